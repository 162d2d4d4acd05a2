// Package pubacks waits for the acknowledgements of JetStream writes sent
// in a burst (PublishMsgAsync), and tells a compare-and-set refusal from
// other errors. Usher batches its writes this way wherever many bots are
// written at once: one round trip for the burst instead of one per bot.
package pubacks

import (
	"context"
	"errors"

	"github.com/nats-io/nats.go/jetstream"
)

// Result is what became of one write: its acknowledgement, or why there
// is none.
type Result struct {
	Ack *jetstream.PubAck
	Err error
}

// Await waits for every future until ctx is done and returns their results
// in the same order. A write not acknowledged by then gets ctx's error,
// though one already answered counts as answered. A nil future gives a
// zero Result (the caller knows why it sent nothing).
func Await(ctx context.Context, futs []jetstream.PubAckFuture) []Result {
	out := make([]Result, len(futs))
	for i, f := range futs {
		if f == nil {
			continue
		}
		if pf, ok := f.(*Future); ok {
			out[i] = awaitFuture(ctx, pf)
			continue
		}
		if ctx.Err() == nil {
			select {
			case ack := <-f.Ok():
				out[i].Ack = ack
				continue
			case err := <-f.Err():
				out[i].Err = err
				continue
			case <-ctx.Done():
			}
		}
		select {
		case ack := <-f.Ok():
			out[i].Ack = ack
		case err := <-f.Err():
			out[i].Err = err
		default:
			out[i].Err = ctx.Err()
		}
	}
	return out
}

// awaitFuture is Await's way with a Future of a Publisher: one channel,
// none made for it.
func awaitFuture(ctx context.Context, f *Future) Result {
	select {
	case <-f.Done():
		return f.Result()
	case <-ctx.Done():
	}
	select {
	case <-f.Done():
		return f.Result()
	default:
		return Result{Err: ctx.Err()}
	}
}

// WrongLastSequence reports whether a write was refused because its
// subject's last sequence was not the one it expected (a compare-and-set
// that lost; 10164 is the same refusal from a replicated stream).
func WrongLastSequence(err error) bool {
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && (apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
		apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant)
}
