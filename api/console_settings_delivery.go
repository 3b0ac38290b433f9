package api

import (
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/parcours/parcours/pkg/channel"
	"github.com/parcours/parcours/pkg/user"
)

// blankCapRows is how many empty cap rows the form offers for new caps: the
// page works without JavaScript, so rows cannot be added on the fly.
const blankCapRows = 2

// capRow is one frequency cap as the form edits it: "At most Max marketing
// messages on Channel per PerN PerUnit per person".
type capRow struct {
	Index                       int
	Channel, Max, PerN, PerUnit string
}

// deliverySettingsData is the caps and quiet hours page's data.
type deliverySettingsData struct {
	settingsNav
	Caps []capRow
	// Quiet hours: on or off, from, to, and the channels they hold back.
	QuietOn                     bool
	QuietStart, QuietEnd        string
	QuietChannels               map[string]bool
	DefaultTimezone             string
	UpdatedAt                   time.Time
	FieldErrors                 map[string]string
	Error, Notice               string
	ChannelOptions, UnitOptions []settingsOption
	// Zones are suggestions for the time zone field.
	Zones []string
}

// settingsOption is a value and its label in a select.
type settingsOption struct{ Value, Label string }

var (
	capChannels = []settingsOption{{"email", "email"}, {"sms", "text (SMS)"}, {"webhook", "webhook"}}
	capUnits    = []settingsOption{{"m", "minutes"}, {"h", "hours"}, {"d", "days"}, {"w", "weeks"}}
	// settingsZones are offered as suggestions; any IANA zone is accepted.
	settingsZones = []string{"UTC", "Europe/London", "Europe/Paris", "Europe/Berlin", "Europe/Madrid", "Europe/Rome",
		"Europe/Amsterdam", "Europe/Stockholm", "Europe/Warsaw", "Europe/Istanbul", "Africa/Johannesburg", "Asia/Dubai",
		"Asia/Kolkata", "Asia/Singapore", "Asia/Tokyo", "Australia/Sydney", "Pacific/Auckland", "America/Sao_Paulo",
		"America/New_York", "America/Chicago", "America/Denver", "America/Los_Angeles", "America/Toronto", "America/Mexico_City"}
	capWindowRe = regexp.MustCompile(`^([0-9]+)([mhdw])$`)
)

func deliveryDataOf(sess user.Session, p channel.Policy) deliverySettingsData {
	d := deliverySettingsData{settingsNav: settingsNavFor(sess, "delivery"), QuietChannels: map[string]bool{},
		DefaultTimezone: p.DefaultTimezone, UpdatedAt: p.UpdatedAt, FieldErrors: map[string]string{}}
	for _, c := range p.FrequencyCaps {
		row := capRow{Channel: c.Channel, Max: strconv.Itoa(c.Max), PerN: c.Per, PerUnit: "d"}
		if m := capWindowRe.FindStringSubmatch(c.Per); m != nil {
			row.PerN, row.PerUnit = m[1], m[2]
		}
		d.Caps = append(d.Caps, row)
	}
	if q := p.QuietHours; q != nil {
		d.QuietOn, d.QuietStart, d.QuietEnd = true, q.Start, q.End
		for _, ch := range q.Channels {
			d.QuietChannels[ch] = true
		}
	} else {
		// Suggestions for a first setting: evenings and nights, email and SMS.
		d.QuietStart, d.QuietEnd = "21:00", "08:00"
		d.QuietChannels["email"], d.QuietChannels["sms"] = true, true
	}
	return d
}

func (s *Server) renderDelivery(c echo.Context, sess user.Session, status int, d deliverySettingsData) error {
	for len(d.Caps) == 0 || d.Caps[len(d.Caps)-1].Max != "" || countBlankCaps(d.Caps) < blankCapRows {
		d.Caps = append(d.Caps, capRow{Channel: "email", PerN: "1", PerUnit: "d"})
	}
	for i := range d.Caps {
		d.Caps[i].Index = i
	}
	d.ChannelOptions, d.UnitOptions, d.Zones = capChannels, capUnits, settingsZones
	return s.render(c, status, "settings_delivery.html", view{Title: "Settings: frequency caps and quiet hours", Nav: "settings", User: &sess.User, CSRF: sess.CSRF, D: d})
}

func countBlankCaps(rows []capRow) int {
	n := 0
	for _, r := range rows {
		if r.Max == "" {
			n++
		}
	}
	return n
}

func (s *Server) deliverySettingsPage(c echo.Context, sess user.Session) error {
	p, err := s.Channels.Policy(c.Request().Context(), sess.User.WorkspaceID)
	if err != nil {
		return err
	}
	d := deliveryDataOf(sess, p)
	if c.QueryParam("saved") != "" {
		d.Notice = "Saved. Marketing messages are held back by these rules from now on."
	}
	return s.renderDelivery(c, sess, http.StatusOK, d)
}

// deliveryForm reads the form into the policy to save and the page to show
// again; rows maps each cap of the policy to its form row (blank rows are
// not caps). Errors the form alone can tell are in d.FieldErrors.
func deliveryForm(c echo.Context, sess user.Session) (channel.Policy, deliverySettingsData, []int) {
	d := deliverySettingsData{settingsNav: settingsNavFor(sess, "delivery"), QuietChannels: map[string]bool{}, FieldErrors: map[string]string{}}
	p := channel.Policy{FrequencyCaps: []channel.FrequencyCap{}}
	var rows []int
	n, _ := strconv.Atoi(c.FormValue("cap_rows"))
	for i := range min(n, 50) {
		f := func(name string) string { return strings.TrimSpace(c.FormValue(fmt.Sprintf("%s_%d", name, i))) }
		row := capRow{Channel: f("cap_channel"), Max: f("cap_max"), PerN: f("cap_per_n"), PerUnit: f("cap_per_unit")}
		d.Caps = append(d.Caps, row)
		if row.Max == "" {
			continue // an empty row, or a cap cleared to remove it
		}
		row.Index = len(d.Caps) - 1
		most, err := strconv.Atoi(row.Max)
		if err != nil {
			d.FieldErrors[fmt.Sprintf("cap_max_%d", row.Index)] = "Type a whole number of messages, e.g. 2, or leave it empty to remove the cap."
			continue
		}
		if per, err := strconv.Atoi(row.PerN); err != nil || per < 1 {
			d.FieldErrors[fmt.Sprintf("cap_per_%d", row.Index)] = "Type a whole number, e.g. 1 day or 7 days."
			continue
		}
		p.FrequencyCaps = append(p.FrequencyCaps, channel.FrequencyCap{Channel: row.Channel, Purpose: channel.Marketing, Max: most, Per: row.PerN + row.PerUnit})
		rows = append(rows, row.Index)
	}
	d.QuietOn = c.FormValue("quiet_on") == "on"
	d.QuietStart, d.QuietEnd = strings.TrimSpace(c.FormValue("quiet_start")), strings.TrimSpace(c.FormValue("quiet_end"))
	form, _ := c.FormParams()
	for _, ch := range form["quiet_channel"] {
		d.QuietChannels[ch] = true
	}
	if d.QuietOn {
		p.QuietHours = &channel.QuietHours{Start: d.QuietStart, End: d.QuietEnd, Channels: form["quiet_channel"]}
	}
	d.DefaultTimezone = strings.TrimSpace(c.FormValue("default_timezone"))
	p.DefaultTimezone = d.DefaultTimezone
	return p, d, rows
}

// policyFieldRe reads the index of a cap field: frequency_caps[3].max.
var policyFieldRe = regexp.MustCompile(`^frequency_caps\[(\d+)\]\.(\w+)$`)

// policyFormError puts one of the policy's errors next to its form field,
// in words.
func policyFormError(d *deliverySettingsData, rows []int, f channel.FieldError) {
	if m := policyFieldRe.FindStringSubmatch(f.Field); m != nil {
		i, _ := strconv.Atoi(m[1])
		if i >= len(rows) {
			d.Error = f.Reason
			return
		}
		switch m[2] {
		case "max":
			d.FieldErrors[fmt.Sprintf("cap_max_%d", rows[i])] = "Choose from 1 to 1000 messages."
		case "per":
			d.FieldErrors[fmt.Sprintf("cap_per_%d", rows[i])] = "Choose a period from 1 minute to a year, e.g. 1 day or 7 days."
		case "channel":
			d.FieldErrors[fmt.Sprintf("cap_channel_%d", rows[i])] = "Choose email, text (SMS) or webhook."
		default:
			d.FieldErrors[fmt.Sprintf("cap_max_%d", rows[i])] = f.Reason
		}
		return
	}
	switch {
	case f.Field == "quiet_hours.start":
		d.FieldErrors["quiet_start"] = "Give the time quiet hours begin, e.g. 21:00."
	case f.Field == "quiet_hours.end" && strings.Contains(f.Reason, "differ"):
		d.FieldErrors["quiet_end"] = "Quiet hours must end at another time than they begin."
	case f.Field == "quiet_hours.end":
		d.FieldErrors["quiet_end"] = "Give the time quiet hours end, e.g. 08:00."
	case strings.HasPrefix(f.Field, "quiet_hours.channels"):
		d.FieldErrors["quiet_channels"] = "Tick at least one channel that quiet hours hold back."
	case f.Field == "default_timezone":
		d.FieldErrors["default_timezone"] = fmt.Sprintf("%q is not a time zone we know: use a name such as Europe/Paris or America/New_York.", d.DefaultTimezone)
	default:
		d.Error = f.Error()
	}
}

func (s *Server) saveDeliveryForm(c echo.Context, sess user.Session) error {
	p, d, rows := deliveryForm(c, sess)
	// Validate even when the form already has errors, to mark every wrong
	// field at once; save only a form without any.
	err := p.Validate()
	if len(d.FieldErrors) == 0 && err == nil {
		_, err = s.Channels.PutPolicy(c.Request().Context(), sess.User.WorkspaceID, p)
		if err == nil {
			return c.Redirect(http.StatusSeeOther, "/settings/delivery?saved=1")
		}
	}
	var pe *channel.PolicyError
	switch {
	case errors.As(err, &pe):
		for _, f := range pe.Errors {
			policyFormError(&d, rows, f)
		}
	case err != nil:
		return err
	}
	if d.Error == "" {
		d.Error = "Nothing was saved: fix what is marked below."
	}
	return s.renderDelivery(c, sess, http.StatusUnprocessableEntity, d)
}
