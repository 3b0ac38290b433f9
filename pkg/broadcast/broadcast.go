// Package broadcast keeps broadcasts: one template sent to the members of a
// segment, now, once at a time, or on a recurring schedule (cron in a time
// zone). Each send is an occurrence: its audience is snapshotted into
// broadcast_recipients (ids only), then sent in batches through the delivery
// ledger. This package holds the model, its validation and its SQL; the
// Temporal workflow that drives an occurrence lives in package workflows.
package broadcast

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// Statuses of a broadcast.
const (
	// StatusScheduled: a one-off broadcast waiting for its time.
	StatusScheduled = "scheduled"
	// StatusRunning: a one-off broadcast sending now.
	StatusRunning = "running"
	// StatusSent: a one-off broadcast whose occurrence finished.
	StatusSent = "sent"
	// StatusActive: a recurring broadcast; each occurrence has its status.
	StatusActive = "active"
	// StatusCancelled: stopped by a user; nothing more is sent.
	StatusCancelled = "cancelled"
	// StatusFailed: a one-off broadcast whose occurrence could not run.
	StatusFailed = "failed"
)

// Statuses of an occurrence (running, then one of the others).
const (
	OccurrenceRunning   = "running"
	OccurrenceSent      = "sent"
	OccurrenceCancelled = "cancelled"
	OccurrenceFailed    = "failed"
)

// Once is the occurrence name of a one-off broadcast.
const Once = "once"

// Errors of the store.
var (
	ErrNotFound = errors.New("broadcast not found")
	// ErrFinished: the broadcast already sent (or failed); there is nothing
	// left to cancel.
	ErrFinished = errors.New("broadcast already finished")
	// ErrSegmentGone: the broadcast's segment was deleted; its next
	// occurrence has no audience to send to.
	ErrSegmentGone = errors.New("the broadcast's segment was deleted")
)

// FieldError names a wrong input field.
type FieldError struct {
	Field  string
	Reason string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Reason }

// Schedule says when a broadcast sends: At for one-off, Cron (five fields,
// or @daily, @weekly, ...) in Timezone for recurring. Absent: at once.
type Schedule struct {
	At       *time.Time `json:"at,omitempty"`
	Cron     string     `json:"cron,omitempty"`
	Timezone string     `json:"timezone,omitempty"`
}

// Recurring says whether the schedule repeats.
func (s *Schedule) Recurring() bool { return s != nil && s.Cron != "" }

// Broadcast is a broadcast with its occurrences.
type Broadcast struct {
	ID          string       `json:"id"`
	Name        string       `json:"name"`
	SegmentID   string       `json:"segment_id"`
	Segment     string       `json:"segment"`
	Template    string       `json:"template"`
	Channel     string       `json:"channel"`
	Class       string       `json:"class"`
	Schedule    *Schedule    `json:"schedule,omitempty"`
	Status      string       `json:"status"`
	CreatedAt   time.Time    `json:"created_at"`
	UpdatedAt   time.Time    `json:"updated_at"`
	CancelledAt *time.Time   `json:"cancelled_at,omitempty"`
	Occurrences []Occurrence `json:"occurrences,omitempty"`
}

// Occurrence is one send of a broadcast.
type Occurrence struct {
	// Name is "once", or the scheduled time of a recurring occurrence.
	Name       string     `json:"occurrence"`
	Status     string     `json:"status"`
	Reason     string     `json:"reason,omitempty"`
	WorkflowID string     `json:"workflow_id"`
	RunID      string     `json:"run_id"`
	AsOf       time.Time  `json:"audience_as_of"`
	StartedAt  time.Time  `json:"started_at"`
	FinishedAt *time.Time `json:"finished_at,omitempty"`
	Counts     Counts     `json:"counts"`
}

// Counts are what became of an occurrence's recipients so far.
type Counts struct {
	// Recipients in the audience snapshot.
	Recipients int `json:"recipients"`
	// Pending: not handled yet.
	Pending int `json:"pending"`
	Sent    int `json:"sent"`
	Skipped int `json:"skipped"`
	// SkippedBy counts skipped recipients by reason (unsubscribed,
	// suppressed, no address, ...).
	SkippedBy map[string]int `json:"skipped_by_reason"`
	Failed    int            `json:"failed"`
	FailedBy  map[string]int `json:"failed_by_reason"`
	// Unknown: a marketing message a crashed attempt may have handed to the
	// provider; not sent again (docs/delivery.md).
	Unknown int `json:"unknown"`
}

func (c *Counts) add(status, reason string, n int) {
	switch status {
	case "pending":
		c.Pending += n
	case "sent":
		c.Sent += n
	case "skipped":
		c.Skipped += n
		c.SkippedBy[reason] += n
	case "failed":
		c.Failed += n
		c.FailedBy[reason] += n
	case "unknown":
		c.Unknown += n
	}
	c.Recipients += n
}

// Input is what a user asks for.
type Input struct {
	Name     string
	Segment  string // slug
	Template string // slug
	Channel  string
	Class    string
	Schedule *Schedule
}

// validate checks the fields that need no database.
func (in *Input) validate(now time.Time) error {
	in.Name = strings.TrimSpace(in.Name)
	switch {
	case in.Name == "" || len(in.Name) > 200:
		return &FieldError{"name", "is required, at most 200 characters"}
	case in.Segment == "":
		return &FieldError{"segment", "is required: the slug of the segment whose members receive it"}
	case in.Template == "":
		return &FieldError{"template", "is required: the slug of an email template"}
	}
	if in.Channel == "" {
		in.Channel = "email"
	}
	if in.Channel != "email" {
		return &FieldError{"channel", "must be email (the only channel broadcasts send on today)"}
	}
	if in.Class == "" {
		in.Class = "marketing"
	}
	if in.Class != "marketing" && in.Class != "transactional" {
		return &FieldError{"class", "must be marketing or transactional"}
	}
	s := in.Schedule
	if s == nil || (s.At == nil && s.Cron == "" && s.Timezone == "") {
		in.Schedule = nil
		return nil
	}
	switch {
	case s.At != nil && s.Cron != "":
		return &FieldError{"schedule", "give either at (once) or cron (recurring), not both"}
	case s.At != nil:
		if s.Timezone != "" {
			return &FieldError{"schedule.timezone", "only goes with cron; at carries its own offset"}
		}
		if !s.At.After(now) {
			return &FieldError{"schedule.at", "must be in the future (omit schedule to send now)"}
		}
		if s.At.After(now.AddDate(1, 0, 0)) {
			return &FieldError{"schedule.at", "must be within a year"}
		}
		at := s.At.UTC()
		s.At = &at
	default:
		if s.Cron == "" {
			return &FieldError{"schedule.cron", "is required with timezone, e.g. \"0 9 * * mon\""}
		}
		if err := checkCron(s.Cron); err != nil {
			return &FieldError{"schedule.cron", err.Error()}
		}
		if s.Timezone == "" {
			s.Timezone = "UTC"
		}
		if _, err := time.LoadLocation(s.Timezone); err != nil || s.Timezone == "Local" {
			return &FieldError{"schedule.timezone", "is not an IANA time zone name, e.g. Europe/Paris"}
		}
	}
	return nil
}

// checkCron catches the obvious mistakes; Temporal, which runs the
// schedule, has the last word on the rest.
func checkCron(expr string) error {
	expr = strings.TrimSpace(expr)
	if strings.HasPrefix(expr, "@") {
		switch expr {
		case "@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly":
			return nil
		}
		return fmt.Errorf("%s is not one of @yearly, @monthly, @weekly, @daily, @hourly", expr)
	}
	if n := len(strings.Fields(expr)); n != 5 {
		return fmt.Errorf("has %d fields; want 5: minute hour day-of-month month day-of-week, e.g. \"0 9 * * mon\"", n)
	}
	if strings.ContainsAny(expr, "\n\r\t") || strings.Contains(strings.ToUpper(expr), "TZ=") {
		return errors.New("give the time zone in schedule.timezone")
	}
	return nil
}
