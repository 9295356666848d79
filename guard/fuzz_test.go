package guard

import (
	"bytes"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
)

// FuzzParseEnvelope checks the HTTP stage's reading of a POST body, which
// charges the rate limiter and decides step-up before go-sdk reads the
// same body: it must never panic, must refuse batches, and whatever it
// accepts as a request must be the request go-sdk decodes, same method.
func FuzzParseEnvelope(f *testing.F) {
	for _, seed := range []string{
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"query","arguments":{"sql":"select 1"}}}`,
		`[{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a"}}]`,
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a","name":"b"}}`,
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","method":"ping"}`,
		`{"jsonrpc":"2.0","id":1,"result":{}}`, `{}`, ``, `null`, ` [ `, `{"jsonrpc":"2.0","method":"notifications/initialized"}`,
		`{"jsonrpc":"2.0","id":1,"method":"prompts/get","params":{"name":"p"}} {"x":1}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		env, err := parseEnvelope(body)
		trimmed := bytes.TrimSpace(body)
		if len(trimmed) > 0 && trimmed[0] == '[' && err == nil {
			t.Fatalf("a batch was accepted: %q", body)
		}
		if err != nil {
			return
		}
		msg, derr := jsonrpc.DecodeMessage(trimmed)
		if derr != nil {
			t.Fatalf("accepted %q, which go-sdk cannot decode: %v", body, derr)
		}
		if req, ok := msg.(*jsonrpc.Request); ok && req.Method != env.method {
			t.Fatalf("%q: envelope method %q, go-sdk method %q", body, env.method, req.Method)
		}
	})
}
