//go:build !linux

package browser

func adoptOrphans() error { return nil }

const markerEnv = "USHER_BROWSER_INSTANCE"

func killMarked(pgid int, _ string, _ []int, gone <-chan struct{}) {
	killGroup(pgid)
	<-gone
}

func helpers(int, string) []int { return nil }
