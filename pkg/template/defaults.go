package template

// defaults are starter emails for the templates the journey scenarios send,
// so that a marketer can publish a scenario at once and edit the words
// later. Liquid reads the profile's traits; `default` covers people whose
// first name is unknown.
var defaults = map[string]Template{
	"welcome": {Name: "Welcome", Subject: "Welcome, {{ profile.traits.first_name | default: \"friend\" }}!",
		Preheader: "Glad to have you with us.",
		HTML: `<h1>Welcome, {{ profile.traits.first_name | default: "friend" }}!</h1>
<p>Thank you for signing up. Here is what you can do first:</p>
<ul><li>Browse this week's new arrivals</li><li>Save your favourites</li><li>Get free delivery on your first order</li></ul>
<p><a href="https://shop.example.com/new">See what's new</a></p>`,
		Text: "Welcome, {{ profile.traits.first_name | default: \"friend\" }}!\n\nThank you for signing up. See what's new: https://shop.example.com/new\n"},
	"welcome-tips": {Name: "Welcome tips", Subject: "Three tips to get the most out of your account",
		HTML: `<p>Hello {{ profile.traits.first_name | default: "there" }},</p>
<p>Three tips: save your sizes, follow your favourite brands, and turn on order updates.</p>
<p><a href="https://shop.example.com/account">Open your account</a></p>`,
		Text: "Hello {{ profile.traits.first_name | default: \"there\" }},\n\nThree tips: save your sizes, follow your favourite brands, and turn on order updates.\nhttps://shop.example.com/account\n"},
	"cart-rescue-1": {Name: "Cart reminder", Subject: "{{ profile.traits.first_name | default: \"Hello\" }}, your cart is waiting",
		HTML: `<p>You left something in your cart. It is saved for you.</p><p><a href="https://shop.example.com/cart">Back to your cart</a></p>`,
		Text: "You left something in your cart. It is saved for you: https://shop.example.com/cart\n"},
	"cart-rescue-coupon": {Name: "Cart coupon", Subject: "10% off the cart you left",
		HTML: `<p>Still thinking it over? Take 10% off with the code <strong>COMEBACK10</strong>.</p><p><a href="https://shop.example.com/cart">Finish your order</a></p>`,
		Text: "Still thinking it over? Take 10% off with the code COMEBACK10: https://shop.example.com/cart\n"},
	"newsletter": {Name: "Newsletter", Subject: "This week at the shop",
		HTML: `<h1>This week at the shop</h1><p>New arrivals, a recipe and a story from our workshop.</p><p><a href="https://shop.example.com/journal">Read it</a></p>`,
		Text: "This week at the shop: new arrivals, a recipe and a story from our workshop.\nhttps://shop.example.com/journal\n"},
	"newsletter-resend": {Name: "Newsletter (resend)", Subject: "In case you missed it: this week at the shop",
		HTML: `<h1>In case you missed it</h1><p>New arrivals, a recipe and a story from our workshop.</p><p><a href="https://shop.example.com/journal">Read it</a></p>`,
		Text: "In case you missed it: new arrivals, a recipe and a story from our workshop.\nhttps://shop.example.com/journal\n"},
	"thank-you": {Name: "Thank you", Subject: "Thank you for your first order, {{ profile.traits.first_name | default: \"friend\" }}",
		HTML: `<p>Thank you for your first order. We are preparing it with care.</p><p><a href="https://shop.example.com/orders">Follow your order</a></p>`,
		Text: "Thank you for your first order. We are preparing it with care.\nhttps://shop.example.com/orders\n"},
}

// Default returns a starter email template for a slug the journey scenarios
// use (welcome, welcome-tips, cart-rescue-1, ...), ready to Create.
func Default(slug string) (Template, bool) {
	t, ok := defaults[slug]
	if !ok {
		return Template{}, false
	}
	t.Slug, t.Channel, t.Kind = slug, "email", KindMessage
	return t, true
}
