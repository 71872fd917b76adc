package atmswitch

import (
	"bytes"
	"encoding/json"
	"strings"
)

// duplicateKey returns the first key that appears twice in one object of
// the JSON value at the start of body, at any depth, and whether there is
// one. encoding/json keeps the last of two equal keys, so {"amount":1,
// "amount":9} would be read as 9 here while a bank app's parser (or a log,
// or a proxy's filter) may have read 1: a request must mean one thing.
// Keys are compared after case folding, since encoding/json also matches
// field names without regard to case ("AMOUNT" fills Amount). A body that is
// not valid JSON is left to the decoder to report.
func duplicateKey(body []byte) (string, bool) {
	dec := json.NewDecoder(bytes.NewReader(body))
	type frame struct {
		keys    map[string]struct{} // nil for an array
		wantKey bool                // in an object, the next string is a key
	}
	var stack []*frame
	// valueDone marks the end of a value in its container: in an object,
	// a key comes next.
	valueDone := func() {
		if n := len(stack); n > 0 && stack[n-1].keys != nil {
			stack[n-1].wantKey = true
		}
	}
	for {
		tok, err := dec.Token()
		if err != nil {
			return "", false
		}
		switch t := tok.(type) {
		case json.Delim:
			switch t {
			case '{':
				stack = append(stack, &frame{keys: map[string]struct{}{}, wantKey: true})
				continue
			case '[':
				stack = append(stack, &frame{})
				continue
			default: // '}' or ']'
				stack = stack[:len(stack)-1]
			}
		case string:
			if n := len(stack); n > 0 && stack[n-1].wantKey {
				top := stack[n-1]
				folded := strings.ToLower(strings.ToUpper(t)) // folds K (Kelvin) and ſ as encoding/json does
				if _, dup := top.keys[folded]; dup {
					return t, true
				}
				top.keys[folded] = struct{}{}
				top.wantKey = false
				continue
			}
		}
		valueDone()
		if len(stack) == 0 {
			return "", false // the first value is complete
		}
	}
}
