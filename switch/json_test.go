package atmswitch

import (
	"bytes"
	"encoding/json"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/softatm/softatm"
)

// nested is a request with objects inside, as the duplicate check must look
// into them too.
type nested struct {
	Amount int64 `json:"amount"`
	Inner  struct {
		Name string `json:"name"`
		Deep struct {
			N int `json:"n"`
		} `json:"deep"`
	} `json:"inner"`
	List []struct {
		Name string `json:"name"`
	} `json:"list"`
}

func TestDecodeJSONDuplicateKeys(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, body string
		ok         bool
	}{
		{"plain", `{"amount":1,"inner":{"name":"a","deep":{"n":1}},"list":[{"name":"a"},{"name":"b"}]}`, true},
		{"same key in sibling objects", `{"list":[{"name":"a"},{"name":"a"}]}`, true},
		{"same key at two depths", `{"inner":{"name":"a"},"list":[{"name":"a"}]}`, true},
		{"a value equal to a key", `{"inner":{"name":"name"}}`, true},
		{"top level twice", `{"amount":1,"amount":2}`, false},
		{"top level twice, same value", `{"amount":1,"amount":1}`, false},
		{"other case", `{"amount":1,"Amount":2}`, false},
		{"object twice", `{"inner":{"deep":{"n":1}},"inner":{}}`, false},
		{"nested object", `{"inner":{"name":"a","name":"b"}}`, false},
		{"deeper object", `{"inner":{"deep":{"n":1,"n":2}}}`, false},
		{"object in an array", `{"list":[{"name":"a"},{"name":"b","NAME":"c"}]}`, false},
		{"after a nested object", `{"inner":{"name":"a"},"amount":1,"inner":{"name":"b"}}`, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var v nested
			err := DecodeJSON(httptest.NewRequest("POST", "/", strings.NewReader(tc.body)), &v)
			if tc.ok && err != nil {
				t.Fatalf("refused: %v", err)
			}
			if !tc.ok && softatm.ErrorCode(err) != softatm.EInvalid {
				t.Fatalf("decoded to %+v (%v), want invalid_request", v, err)
			}
		})
	}
	if _, dup := duplicateKey([]byte(`{"\u212Aey":1,"key":2}`)); !dup {
		t.Error(`"\u212Aey" (Kelvin sign) and "key" name one field for encoding/json, yet passed`)
	}
}

func TestCheckName(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		ok   bool
	}{
		{"Nguyen Van An", true},
		{"Nguyễn Văn An", true},
		{"O'Brien-Smith Jr.", true},
		{"", true},
		{"\x00Nguyen", false},
		{"Nguyen\x00", false},
		{"Nguyen\tVan", false},
		{"Nguyen\nVan", false},
		{"Nguyen\x7fVan", false},
		{"Nguyen\u0085Van", false},
		{"Nguyen\u2028Van", false},
		{"Nguyen \u202eVan", false},
		{"\u202aNguyen", false},
		{"Nguyen\u2066Van\u2069", false},
		{"Nguyen\u200fVan", false},
		{"<b>Nguyen</b>", false},
		{"Nguyen > Van", false},
		{"Nguyen \xff", false},
	} {
		err := checkName("holder_name", tc.name)
		if tc.ok != (err == nil) || (err != nil && softatm.ErrorCode(err) != softatm.EInvalidName) {
			t.Errorf("%q: %v, want ok=%v or invalid_name", tc.name, err, tc.ok)
		}
	}
}

// FuzzDecodeJSONDuplicateKeys: whatever the body, DecodeJSON answers with
// a value or invalid_request, and a value it accepts has no key twice in
// one object: decoding it as a generic value keeps as many keys as the body
// writes (a duplicate would have merged two).
func FuzzDecodeJSONDuplicateKeys(f *testing.F) {
	for _, seed := range []string{
		`{"amount":1,"amount":2}`,
		`{"amount":1,"AMOUNT":2}`,
		`{"a":{"b":1,"b":2}}`,
		`{"a":[{"b":1},{"b":1,"b":2}]}`,
		`{"a":{"b":1},"c":2,"a":3}`,
		`{"a":[1,"a",{"a":"a"}],"b":{"a":{"a":{}}}}`,
		`{"\u212Aey":1,"key":2}`,
		`{"a":1} {"a":1}`,
		`[{"a":1,"a":2}]`,
		`{"a":"\u0000","b":"\u202e"}`,
		`{`, `{"a":1,"a"`, `[]`, `null`, ``,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		var v any
		err := DecodeJSON(httptest.NewRequest("POST", "/", bytes.NewReader(body)), &v)
		if err != nil {
			if c := softatm.ErrorCode(err); c != softatm.EInvalid {
				t.Fatalf("%q: code %q (%v)", body, c, err)
			}
			return
		}
		if written, kept := keysWritten(t, body), keysKept(v); written != kept {
			t.Fatalf("%q accepted with %d keys written, %d kept: a duplicate passed", body, written, kept)
		}
	})
}

// keysWritten counts the object keys of body's first value as its tokens
// name them.
func keysWritten(t *testing.T, body []byte) int {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(body))
	var (
		n       int
		inObj   []bool // per open container: is it an object
		wantKey []bool
	)
	for {
		tok, err := dec.Token()
		if err != nil {
			return n
		}
		top := len(inObj) - 1
		if d, ok := tok.(json.Delim); ok && (d == '}' || d == ']') {
			inObj, wantKey = inObj[:top], wantKey[:top]
			if top == 0 {
				return n
			}
			wantKey[top-1] = inObj[top-1]
			continue
		}
		if top >= 0 && wantKey[top] {
			n++
			wantKey[top] = false
			continue
		}
		if d, ok := tok.(json.Delim); ok {
			inObj, wantKey = append(inObj, d == '{'), append(wantKey, d == '{')
			continue
		}
		if top < 0 {
			return n
		}
		wantKey[top] = inObj[top]
	}
}

// keysKept counts the object keys of a decoded generic value.
func keysKept(v any) int {
	switch x := v.(type) {
	case map[string]any:
		n := len(x)
		for _, e := range x {
			n += keysKept(e)
		}
		return n
	case []any:
		n := 0
		for _, e := range x {
			n += keysKept(e)
		}
		return n
	}
	return 0
}
