package teller

import (
	"encoding/json"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// constsOf returns the string constants of the Go package in dir that
// match: declared with one of types, or named one of names.
func constsOf(t *testing.T, dir string, types, names []string) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "*.go"))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	fset := token.NewFileSet()
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		file, err := parser.ParseFile(fset, f, src, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range file.Decls {
			g, ok := d.(*ast.GenDecl)
			if !ok || g.Tok != token.CONST {
				continue
			}
			for _, spec := range g.Specs {
				vs := spec.(*ast.ValueSpec)
				typ := ""
				if id, ok := vs.Type.(*ast.Ident); ok {
					typ = id.Name
				}
				for i, name := range vs.Names {
					if i >= len(vs.Values) {
						continue
					}
					lit, ok := vs.Values[i].(*ast.BasicLit)
					if !ok || lit.Kind != token.STRING {
						continue
					}
					v, err := strconv.Unquote(lit.Value)
					if err != nil || v == "" {
						continue
					}
					for _, want := range types {
						if typ == want {
							out = append(out, v)
						}
					}
					for _, want := range names {
						if name.Name == want {
							out = append(out, v)
						}
					}
				}
			}
		}
	}
	return out
}

// TestWordsCoverEveryCode: every withdrawal state, outbox message kind,
// reconciliation category and bank response code declared in the sources
// has words in both languages and a next step, so finance never reads a
// bare code. A state or category added without words fails here.
func TestWordsCoverEveryCode(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		what        string
		dir         string
		types       []string
		names       []string
		dict        map[string]Words
		skip        map[string]bool
		wantAtLeast int
	}{
		{"withdrawal state", "../switch", []string{"State"}, nil, vocabulary.States, nil, 9},
		{"outbox exception kind", "../switch", []string{"Message"}, []string{"kindReplyMismatch"}, vocabulary.Exceptions, nil, 3},
		{"recon category", "../ledger/recon", []string{"Status"}, nil, vocabulary.Recon, nil, 6},
		{"bank response code", "../iso", nil, []string{"RCDoNotHonour", "RCInvalidTransaction", "RCInvalidAmount", "RCInvalidAccount",
			"RCFormatError", "RCInsufficientFunds", "RCExceedsLimit", "RCIssuerUnavailable", "RCDuplicate", "RCSystemError"},
			vocabulary.ResponseCodes, nil, 10},
	} {
		codes := constsOf(t, c.dir, c.types, c.names)
		if len(codes) < c.wantAtLeast {
			t.Errorf("%s: found only %v in %s: did the source move?", c.what, codes, c.dir)
		}
		for _, code := range codes {
			if _, ok := c.dict[code]; !ok {
				t.Errorf("%s %q has no words", c.what, code)
			}
		}
	}
	for name, dict := range map[string]map[string]Words{"exceptions": vocabulary.Exceptions, "recon": vocabulary.Recon,
		"states": vocabulary.States, "response_codes": vocabulary.ResponseCodes} {
		for code, w := range dict {
			if w.Vi == "" || w.En == "" || w.NextVi == "" || w.NextEn == "" || w.Vi == code || w.En == code {
				t.Errorf("%s %q: words %+v must say it in both languages, with a next step", name, code, w)
			}
		}
	}
	for _, page := range []string{"open", "closed", "resolved", "unresolved", "no_answer"} {
		if _, ok := vocabulary.States[page]; !ok {
			if _, ok := vocabulary.ResponseCodes[page]; !ok {
				t.Errorf("no words for %q", page)
			}
		}
	}
}

// TestWordsServed: the finance page gets the vocabulary from the API.
func TestWordsServed(t *testing.T) {
	t.Parallel()
	srv, _ := financeServer(t)
	var v Vocabulary
	if err := json.Unmarshal(mustCall(t, srv, "GET", "/v1/finance/words", nil, 200, ""), &v); err != nil {
		t.Fatal(err)
	}
	if v.Exceptions["advice"].Vi != "Ngân hàng chưa xác nhận chi tiền" || v.Recon["missing_at_switch"].NextEn == "" {
		t.Fatalf("vocabulary %+v", v)
	}
}
