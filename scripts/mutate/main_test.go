package main

import (
	"errors"
	"go/parser"
	"go/token"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

func TestParseGuards(t *testing.T) {
	t.Parallel()
	gs, err := parseGuards(strings.NewReader(`
# a comment
[one]
file = a/b.go
old  = if x > 0 {
new  = if false {
pkgs = ./a/ ./b/
run  = ^TestX$
why  = x

[two]
file = c.go
old  = "\tfoo\n"
new  = "\tbar\n"
old  = baz
new  = qux
pkgs = ./c/
timeout = 2m
`))
	if err != nil {
		t.Fatal(err)
	}
	if len(gs) != 2 || gs[0].ID != "one" || gs[0].Edits[0].Old != "if x > 0 {" || !slices.Equal(gs[0].Pkgs, []string{"./a/", "./b/"}) {
		t.Fatalf("parsed %+v", gs)
	}
	if len(gs[1].Edits) != 2 || gs[1].Edits[0].Old != "\tfoo\n" || gs[1].Edits[1].New != "qux" || gs[1].Timeout.String() != "2m0s" {
		t.Fatalf("parsed %+v", gs[1])
	}
	for _, bad := range []string{
		"file = x.go\n", // outside a block
		"[a]\nfile = x.go\nold = y\nnew = y\npkgs = ./x/\n",               // new equals old
		"[a]\nfile = x.go\nold = y\nnew = z\n",                            // no pkgs
		"[a]\nfile = x.go\nnew = z\npkgs = ./x/\n",                        // new without old
		"[a]\nfile = x.go\nold = y\nnew = z\npkgs = ./x/\n[a]\n",          // twice
		"[a]\nfile = x.go\nold = \"y\nnew = z\npkgs = ./x/\n",             // bad quoting
		"[a]\nfile = x.go\nold = y\nnew = z\npkgs = ./x/\ncolour = red\n", // unknown key
	} {
		if _, err := parseGuards(strings.NewReader(bad)); err == nil {
			t.Errorf("accepted %q", bad)
		}
	}
}

// TestGuardListParses: the list shipped in the repository is well formed
// and big enough. Whether each snippet is still in its file is `make
// mutate-check`'s job, not this test's: code moves while the list waits
// for a re-sync, and that must not break every other engineer's build.
func TestGuardListParses(t *testing.T) {
	t.Parallel()
	f, err := os.Open("guards.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	gs, err := parseGuards(f)
	if err != nil {
		t.Fatal(err)
	}
	if len(gs) < 30 {
		t.Fatalf("%d guards, want at least 30", len(gs))
	}
	for _, g := range gs {
		if g.Run == "" {
			t.Errorf("guard %s names no tests (run)", g.ID)
		}
	}
}

func TestCheckSnippetAndApply(t *testing.T) {
	t.Parallel()
	src := []byte("a := 1\nif a > 0 {\n}\nif a > 0 {\n}\nb := 2\n")
	g := Guard{File: "f.go", Edits: []Edit{{Old: "a := 1", New: "a := 0"}, {Old: "b := 2", New: "b := 3"}}}
	if why := checkSnippet(g, src); why != "" {
		t.Fatal(why)
	}
	if got := string(apply(g, src)); got != "a := 0\nif a > 0 {\n}\nif a > 0 {\n}\nb := 3\n" {
		t.Fatalf("applied: %q", got)
	}
	for _, e := range []Edit{{Old: "if a > 0 {"}, {Old: "c := 3"}} {
		if why := checkSnippet(Guard{File: "f.go", Edits: []Edit{e}}, src); why == "" {
			t.Errorf("snippet %q accepted", e.Old)
		}
	}
}

func TestJudge(t *testing.T) {
	t.Parallel()
	exitErr := func() error {
		err := exec.Command("sh", "-c", "exit 1").Run()
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			t.Fatal(err)
		}
		return err
	}()
	ev := func(lines ...string) []byte { return []byte(strings.Join(lines, "\n")) }
	for _, tc := range []struct {
		name  string
		out   []byte
		err   error
		want  Outcome
		tests []string
	}{
		{"passed", ev(`{"Action":"run","Test":"TestA"}`, `{"Action":"pass","Test":"TestA"}`), nil, Survived, nil},
		{"no test ran", ev(`{"Action":"output","Output":"ok [no tests to run]\n"}`), nil, Broken, nil},
		{"failed", ev(`{"Action":"run","Test":"TestA"}`, `{"Action":"fail","Test":"TestA"}`, `{"Action":"fail"}`), exitErr, Killed, []string{"TestA"}},
		{"subtest kept", ev(`{"Action":"run","Test":"TestA"}`, `{"Action":"fail","Test":"TestA/b"}`, `{"Action":"fail","Test":"TestA"}`), exitErr, Killed, []string{"TestA/b"}},
		{"build failed", ev(`{"Action":"build-output","Output":"x.go:1: declared and not used"}`, `{"Action":"build-fail"}`), exitErr, Broken, nil},
		{"package failed", ev(`{"Action":"output","Output":"panic: in TestMain\n"}`), exitErr, Killed, []string{"(package)"}},
	} {
		got, tests, _ := judge(tc.out, tc.err)
		if got != tc.want || !slices.Equal(tests, tc.tests) {
			t.Errorf("%s: %s %v, want %s %v", tc.name, got, tests, tc.want, tc.tests)
		}
	}
}

// TestImportsOnlyLocalsrv checks the package comment's rule: of this
// module, the command imports fixtures/localsrv only, never the packages it
// mutates (a mutant of those would otherwise break the tool that runs it).
func TestImportsOnlyLocalsrv(t *testing.T) {
	t.Parallel()
	fset := token.NewFileSet()
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range f.Imports {
			p, _ := strconv.Unquote(imp.Path.Value)
			if strings.HasPrefix(p, "github.com/softatm/softatm") && p != "github.com/softatm/softatm/fixtures/localsrv" {
				t.Errorf("%s imports %s", name, p)
			}
		}
	}
}

func TestGuardAcrossFiles(t *testing.T) {
	t.Parallel()
	gs, err := parseGuards(strings.NewReader("[g]\nfile = a.go\nold = x\nnew = y\nfile = b.go\nold = p\nnew = q\nold = r\nnew = s\npkgs = ./a/\nrun = T\n"))
	if err != nil {
		t.Fatal(err)
	}
	parts := gs[0].byFile()
	if len(parts) != 2 || parts[0].File != "a.go" || len(parts[0].Edits) != 1 || parts[1].File != "b.go" || len(parts[1].Edits) != 2 {
		t.Fatalf("split %+v", parts)
	}
}
