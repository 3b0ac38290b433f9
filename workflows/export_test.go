package workflows

// JourneyChanges lists the journey's version change ids, for the replay
// test that wants a recorded history reaching each.
var JourneyChanges = journeyChanges
