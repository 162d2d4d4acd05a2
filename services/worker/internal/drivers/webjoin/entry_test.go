package webjoin

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/usherhq/usher/services/worker/internal/driver"
	"github.com/usherhq/usher/shared/botstate"
)

// entryFixture is a pre-join page: microphone and camera on, a join button
// that records the devices' states when clicked, then a waiting room, then
// the call, whose own microphone and camera start on. A microphone whose id
// is "stuck" never turns off.
const entryFixture = `<!DOCTYPE html><html><body>
<div id="prejoin">
<button id="%MIC%" aria-label="Mute" onclick="toggle(this, 'Mute', 'Unmute')">mic</button>
<button id="cam" aria-label="Stop Video" onclick="toggle(this, 'Stop Video', 'Start Video')">cam</button>
<button id="join" onclick="join()">Join</button>
</div>
<p id="lobby"></p>
<div id="call" style="display:none">
<button id="cmic" aria-label="mute my microphone" onclick="toggle(this, 'mute my microphone', 'unmute my microphone')">mic</button>
<button id="ccam" aria-label="stop my video" onclick="toggle(this, 'stop my video', 'start my video')">cam</button>
</div>
<script>
function toggle(el, on, off) {
  if (el.id === "stuck") return;
  el.setAttribute("aria-label", el.getAttribute("aria-label") === on ? off : on);
}
function join() {
  document.body.dataset.joinedWith = document.querySelector("#prejoin button").getAttribute("aria-label") + "/" +
    document.getElementById("cam").getAttribute("aria-label");
  document.getElementById("prejoin").style.display = "none";
  document.getElementById("lobby").textContent = "Waiting for the host to let you in";
  setTimeout(() => {
    document.getElementById("lobby").textContent = "";
    document.getElementById("call").style.display = "";
  }, 300);
}
</script>
</body></html>`

func testEntry() Entry {
	return Entry{
		Microphone:     NewToggle("#prejoin button[aria-label=\"Mute\"]", "#prejoin button[aria-label=\"Unmute\"]"),
		Camera:         NewToggle("#cam[aria-label=\"Stop Video\"]", "#cam[aria-label=\"Start Video\"]"),
		Join:           Hook{State: StatePrejoin, Selector: "#join", Enabled: true},
		Admission:      []Hook{{State: StateWaitingRoom, Selector: "#lobby", Text: []string{"Waiting for the host"}}, {State: StateInMeeting, Selector: "#call"}},
		CallMicrophone: NewToggle("#cmic[aria-label=\"mute my microphone\"]", "#cmic[aria-label=\"unmute my microphone\"]"),
		CallCamera:     NewToggle("#ccam[aria-label=\"stop my video\"]", "#ccam[aria-label=\"start my video\"]"),
	}
}

// attr reads an attribute of the first element matching sel.
func attr(t *testing.T, p *Page, sel, name string) string {
	t.Helper()
	res, err := p.Tab().Page().Context(testCtx(t)).Eval(`(sel, name) => { const el = document.querySelector(sel); return el ? el.getAttribute(name) || "" : ""; }`, sel, name)
	if err != nil {
		t.Fatal(err)
	}
	return res.Value.Str()
}

func TestEnterJoinsWithMicrophoneAndCameraOffAndMutesTheCall(t *testing.T) {
	t.Parallel()
	p := openHTML(t, replaceMic(entryFixture, "mic"))
	lobbies := 0
	w := driver.WatcherFunc(func(context.Context) { lobbies++ })
	if err := p.Enter(testCtx(t), w, testEntry()); err != nil {
		t.Fatalf("Enter = %v", err)
	}
	if got := attr(t, p, "body", "data-joined-with"); got != "Unmute/Start Video" {
		t.Errorf("join was clicked with the devices %q, want both off (Unmute/Start Video)", got)
	}
	if lobbies != 1 {
		t.Errorf("WaitingRoom called %d times, want 1", lobbies)
	}
	if mic, cam := attr(t, p, "#cmic", "aria-label"), attr(t, p, "#ccam", "aria-label"); mic != "unmute my microphone" || cam != "start my video" {
		t.Errorf("in the call the microphone shows %q and the camera %q, want both off", mic, cam)
	}
}

func TestEnterNeverJoinsWithTheMicrophoneOn(t *testing.T) {
	t.Parallel()
	p := openHTML(t, replaceMic(entryFixture, "stuck"))
	err := p.Enter(testCtx(t), driver.WatcherFunc(func(context.Context) {}), testEntry())
	var je *driver.JoinError
	if !errors.As(err, &je) || je.SubCode != botstate.SubUIElementNotFound || je.Step != "microphone" {
		t.Fatalf("Enter with a microphone that stays on = %v, want ui_element_not_found at microphone", err)
	}
	if got := attr(t, p, "body", "data-joined-with"); got != "" {
		t.Errorf("join was clicked (devices %q) though the microphone stayed on", got)
	}
}

func replaceMic(html, id string) string { return strings.ReplaceAll(html, "%MIC%", id) }
