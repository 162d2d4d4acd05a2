package webjoin

import (
	"context"

	"github.com/usherhq/usher/services/worker/internal/driver"
)

// Toggle is a device control: On matches it while the device is on, Off once
// it is off.
type Toggle struct{ On, Off Hook }

// NewToggle is a toggle told apart by two CSS selectors: on matches the
// control while the device is on, off once it is off.
func NewToggle(on, off string) Toggle {
	return Toggle{On: Hook{State: StatePrompt, Selector: on}, Off: Hook{State: StatePrompt, Selector: off}}
}

// Entry is the way from a platform's pre-join page into its meeting, as
// hooks: the platforms differ in these, not in the steps Page.Enter takes.
type Entry struct {
	// Microphone and Camera are the pre-join page's device toggles.
	Microphone, Camera Toggle
	// Join is the join button.
	Join Hook
	// Admission are the hooks of the wait to be let in (Page.Admit).
	Admission []Hook
	// CallMicrophone and CallCamera are the meeting's own device toggles.
	CallMicrophone, CallCamera Toggle
}

// Enter takes the bot from the pre-join page into the meeting: it switches
// the microphone and the camera off (a toggle that will not turn off fails
// its step, so a bot never joins with either on), clicks join, and waits to
// be admitted, telling w when a waiting room shows (Page.Admit). Once in, it
// switches the call's microphone and camera off again in case the platform
// turned them on: best effort, since the bot is in.
func (p *Page) Enter(ctx context.Context, w driver.Watcher, e Entry) error {
	if err := p.TurnOff(ctx, "microphone", e.Microphone.On, e.Microphone.Off); err != nil {
		return err
	}
	if err := p.TurnOff(ctx, "camera", e.Camera.On, e.Camera.Off); err != nil {
		return err
	}
	if err := p.Click(ctx, "join", e.Join); err != nil {
		return err
	}
	if err := p.Admit(ctx, "admission", w, e.Admission); err != nil {
		return err
	}
	_ = p.TurnOff(ctx, "mute_in_meeting", e.CallMicrophone.On, e.CallMicrophone.Off)
	_ = p.TurnOff(ctx, "mute_in_meeting", e.CallCamera.On, e.CallCamera.Off)
	return nil
}
