package bots_test

import (
	"errors"
	"testing"

	"github.com/usherhq/usher/services/ingest/internal/bots"
)

func TestCursorRoundTrip(t *testing.T) {
	t.Parallel()
	for _, c := range []bots.Cursor{{ID: "bot_0Vc0ezQyxfc8qIeR"}, {Newer: true, ID: "bot_0000000000000000"}} {
		got, err := bots.DecodeCursor(c.Encode())
		if err != nil || got != c {
			t.Errorf("DecodeCursor(Encode(%v)) = %v, %v", c, got, err)
		}
	}
	for _, bad := range []string{"", "!!!", "eHx5", bots.Cursor{ID: "bot_x"}.Encode(), bots.Cursor{ID: "acme.*"}.Encode()} {
		if _, err := bots.DecodeCursor(bad); !errors.Is(err, bots.ErrInvalidCursor) {
			t.Errorf("DecodeCursor(%q) = %v, want ErrInvalidCursor", bad, err)
		}
	}
}
