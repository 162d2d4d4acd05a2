package intake

import (
	"bytes"
	"encoding/json"
	"fmt"
)

// marshalJSON encodes a reply body like the HTTP API does (no HTML escaping).
func marshalJSON(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, fmt.Errorf("encode reply: %w", err)
	}
	return bytes.TrimRight(b.Bytes(), "\n"), nil
}
