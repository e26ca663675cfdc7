package serve

import (
	"strings"
	"testing"
)

// A request or its args of the wrong JSON type is named in JSON's words,
// never with Go's types (the executor shows these messages to users).
func TestDecodeErrorsSpeakJSON(t *testing.T) {
	_, err := DecodeRequest([]byte(`{"id":1,"op":5}`))
	if err == nil || err.Error() != `malformed request: field "op" must be a string, not a number` {
		t.Errorf("op of the wrong type: %v", err)
	}
	_, err = DecodeRequest([]byte(`[1]`))
	if err == nil || err.Error() != `malformed request: a request must be a JSON object, not a list` {
		t.Errorf("not an object: %v", err)
	}
	var sel SelectArgs
	err = decodeArgs("poll", []byte(`{"ids":"a"}`), &sel)
	if err == nil || err.Error() != `poll args: field "ids" must be a list of strings, not a string` {
		t.Errorf("ids of the wrong type: %v", err)
	}
	err = decodeArgs("poll", []byte(`{"ids":[1]}`), &sel)
	if err == nil || err.Error() != `poll args: every item of field "ids" must be a string, not a number` {
		t.Errorf("an id of the wrong type: %v", err)
	}
	if err != nil && strings.Contains(err.Error(), "Go ") {
		t.Errorf("Go's words: %v", err)
	}
}
