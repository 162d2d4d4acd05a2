package app_test

import (
	"testing"

	"go.uber.org/goleak"

	"github.com/usherhq/usher/shared/botstate"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func botstateOf(s string) botstate.State { return botstate.State(s) }
