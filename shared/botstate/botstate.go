// Package botstate is the public vocabulary of a bot's life: its states, the
// closed list of sub-codes that say why, and the Attendee-style event type
// of each transition. The README's sub-code table is generated from SubCodes.
package botstate

// State is a bot's state.
type State string

// States, in the order a bot normally goes through them.
const (
	Ready       State = "ready"
	Scheduled   State = "scheduled"
	Joining     State = "joining"
	WaitingRoom State = "waiting_room"
	Joined      State = "joined"
	Leaving     State = "leaving"
	Ended       State = "ended"
	Failed      State = "failed"
)

// All lists every state.
var All = []State{Ready, Scheduled, Joining, WaitingRoom, Joined, Leaving, Ended, Failed}

// Valid reports whether s is a known state.
func (s State) Valid() bool {
	for _, v := range All {
		if s == v {
			return true
		}
	}
	return false
}

// Terminal reports whether the bot is finished (ended or failed).
func (s State) Terminal() bool { return s == Ended || s == Failed }

// PreMeeting reports whether the bot has not started joining yet.
func (s State) PreMeeting() bool { return s == Ready || s == Scheduled }

// Leavable reports whether a leave request makes sense in this state.
func (s State) Leavable() bool {
	switch s {
	case Ready, Scheduled, Joining, WaitingRoom, Joined:
		return true
	}
	return false
}

// CanTransition reports whether from → to is a legal transition. Any
// non-terminal state may fail; terminal states never change.
func CanTransition(from, to State) bool {
	if from.Terminal() || from == to {
		return false
	}
	switch to {
	case Failed:
		return true
	case Joining:
		// A bot may go back to joining from the meeting when its browser is
		// restarted and it rejoins.
		return from == Ready || from == Scheduled || from == Joined || from == WaitingRoom
	case WaitingRoom:
		return from == Joining
	case Joined:
		return from == Joining || from == WaitingRoom
	case Leaving:
		return from == Ready || from == Scheduled || from == Joining || from == WaitingRoom || from == Joined
	case Ended:
		return from == Ready || from == Scheduled || from == Joining || from == WaitingRoom || from == Joined || from == Leaving
	}
	return false
}

// EventType names a transition the way Attendee's events do, so Attendee
// clients reading bot.events see familiar types.
func EventType(from, to State) string {
	switch to {
	case Joining:
		return "join_requested"
	case WaitingRoom:
		return "put_in_waiting_room"
	case Joined:
		return "joined_meeting"
	case Leaving:
		return "leave_requested"
	case Ended:
		if from == Leaving {
			return "left_meeting"
		}
		if from == Joined || from == WaitingRoom || from == Joining {
			return "meeting_ended"
		}
		return "cancelled"
	case Failed:
		if from == Joining || from == WaitingRoom || from.PreMeeting() {
			return "could_not_join_meeting"
		}
		return "fatal_error"
	}
	return string(to)
}
