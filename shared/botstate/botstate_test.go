package botstate

import "testing"

func TestTransitionsFollowTheBotLifecycle(t *testing.T) {
	t.Parallel()
	legal := [][2]State{
		{Ready, Joining}, {Scheduled, Joining}, {Joining, WaitingRoom}, {WaitingRoom, Joined},
		{Joining, Joined}, {Joined, Leaving}, {Leaving, Ended}, {Joined, Ended}, {Joined, Joining},
		{Ready, Ended}, {Scheduled, Ended}, {Joining, Failed}, {Leaving, Failed},
	}
	for _, tr := range legal {
		if !CanTransition(tr[0], tr[1]) {
			t.Errorf("%s → %s refused, want allowed", tr[0], tr[1])
		}
	}
	illegal := [][2]State{
		{Ended, Joining}, {Failed, Ended}, {Ended, Failed}, {Joined, Joined}, {Joined, WaitingRoom},
		{Ready, Joined}, {Leaving, Joined}, {Joining, Ready}, {Ready, Scheduled},
	}
	for _, tr := range illegal {
		if CanTransition(tr[0], tr[1]) {
			t.Errorf("%s → %s allowed, want refused", tr[0], tr[1])
		}
	}
}

func TestEventTypesAreAttendees(t *testing.T) {
	t.Parallel()
	cases := map[[2]State]string{
		{Ready, Joining}:       "join_requested",
		{Joining, WaitingRoom}: "put_in_waiting_room",
		{WaitingRoom, Joined}:  "joined_meeting",
		{Joined, Leaving}:      "leave_requested",
		{Leaving, Ended}:       "left_meeting",
		{Joined, Ended}:        "meeting_ended",
		{Scheduled, Ended}:     "cancelled",
		{WaitingRoom, Failed}:  "could_not_join_meeting",
		{Joined, Failed}:       "fatal_error",
	}
	for tr, want := range cases {
		if got := EventType(tr[0], tr[1]); got != want {
			t.Errorf("EventType(%s, %s) = %q, want %q", tr[0], tr[1], got, want)
		}
	}
	if !Ended.Terminal() || !Failed.Terminal() || Joined.Terminal() || !KnownSubCode("") || KnownSubCode("nope") {
		t.Error("terminal states or sub-code lookup wrong")
	}
}
