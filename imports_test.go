package softatm

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"go/parser"
	"go/token"
	"io"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// importRule is one import rule that a package comment states. Packages are
// named relative to the module ("" is the root package softatm); a name
// ending in "/..." also covers every package below it.
type importRule struct {
	// pkgs are the packages the rule binds; doc is the file whose package
	// comment states it.
	pkgs []string
	doc  string
	// onlyDirect, when not nil, lists the packages of this module that the
	// bound packages may import directly; an empty list means none.
	onlyDirect []string
	// notEven lists packages of this module that the bound packages must not
	// depend on, directly or through any other package.
	notEven []string
	// importedOnlyBy, when not nil, lists the only packages of this module
	// that may import the bound packages (non-test code).
	importedOnlyBy []string
}

// importRules are the import rules of the package comments, one entry per
// comment. TestImportRules checks the code against them, and that every
// package comment stating an import rule has an entry here.
var importRules = []importRule{
	{pkgs: []string{""}, doc: "errors.go", onlyDirect: []string{}},
	{pkgs: []string{"fixtures"}, doc: "fixtures/fixtures.go", onlyDirect: []string{}},
	{pkgs: []string{"fixtures/faultproxy"}, doc: "fixtures/faultproxy/proxy.go", onlyDirect: []string{}},
	{pkgs: []string{"fixtures/localsrv"}, doc: "fixtures/localsrv/localsrv.go", onlyDirect: []string{}},
	{pkgs: []string{"fixtures/hacluster"}, doc: "fixtures/hacluster/hacluster.go", onlyDirect: []string{"fixtures/localsrv"}},
	{pkgs: []string{"iso"}, doc: "iso/spec.go", onlyDirect: []string{}},
	{pkgs: []string{"iso/banksim"}, doc: "iso/banksim/sim.go", onlyDirect: []string{"iso"}},
	{pkgs: []string{"ledger"}, doc: "ledger/ledger.go", onlyDirect: []string{""},
		notEven: []string{"switch/...", "teller/...", "iso/..."}},
	{pkgs: []string{"ledger/..."}, doc: "ledger/ledger.go", notEven: []string{"switch/...", "teller/..."}},
	{pkgs: []string{"ledger/recon"}, doc: "ledger/recon/recon.go", onlyDirect: []string{"", "ledger", "ledger/schema"},
		notEven: []string{"switch/..."}},
	{pkgs: []string{"ledger/schema"}, doc: "ledger/schema/schema.go", onlyDirect: []string{}},
	{pkgs: []string{"ledger/forecast"}, doc: "ledger/forecast/forecast.go", onlyDirect: []string{}},
	{pkgs: []string{"teller/words"}, doc: "teller/words/words.go", onlyDirect: []string{}},
	{pkgs: []string{"ledger/schema/schematest"}, doc: "ledger/schema/schematest/schematest.go", importedOnlyBy: []string{}},
	{pkgs: []string{"fixtures/testpki"}, doc: "fixtures/testpki/testpki.go", importedOnlyBy: []string{}},
	{pkgs: []string{"switch"}, doc: "switch/atmswitch.go", onlyDirect: []string{"", "ledger", "ledger/recon", "iso", "switch/..."},
		notEven: []string{"teller/..."}},
	{pkgs: []string{"switch/auth"}, doc: "switch/auth/auth.go", onlyDirect: []string{"", "ledger"}},
	{pkgs: []string{"switch/code"}, doc: "switch/code/code.go", onlyDirect: []string{"", "ledger"},
		notEven: []string{"switch", "teller/...", "iso/..."}},
	{pkgs: []string{"switch/idem"}, doc: "switch/idem/idem.go", onlyDirect: []string{"", "ledger"}},
	{pkgs: []string{"switch/replay"}, doc: "switch/replay/replay.go", onlyDirect: []string{""}},
	{pkgs: []string{"switch/schema"}, doc: "switch/schema/schema.go", onlyDirect: []string{"ledger/schema", "ledger/recon"}},
	{pkgs: []string{"switch/seal"}, doc: "switch/seal/seal.go", onlyDirect: []string{}},
	{pkgs: []string{"teller"}, doc: "teller/teller.go", onlyDirect: []string{"", "switch/...", "ledger/...", "iso", "fixtures", "teller/words"},
		importedOnlyBy: []string{"cmd/softatm"}},
	{pkgs: []string{"bench/cmd/loadgen"}, doc: "bench/cmd/loadgen/main.go", importedOnlyBy: []string{}},
	{pkgs: []string{"scripts/mutate"}, doc: "scripts/mutate/main.go", onlyDirect: []string{"fixtures/localsrv"}},
	// Production code must not link package testing (nor testing/...): test
	// helpers that reach the binary bring their flags, their globals and
	// whatever else the tests need with them. Exempt are the benchmarks
	// (bench/..., run from a checkout, never shipped), the test-only package
	// switch/faults and the test helper schematest, which no production
	// package may import (its rule above).
	{pkgs: []string{"cmd/softatm"}, doc: "cmd/softatm/main.go", notEven: productionForbidden},
}

// productionForbidden are what no production package may link.
var productionForbidden = []string{"std:testing", "std:testing/..."}

// productionExempt are the packages the production rule above does not
// bind when it is applied to every package of the module.
var productionExempt = []string{"bench/...", "switch/faults", "ledger/schema/schematest", "fixtures/testpki"}

// ruleSentence finds a package comment that states an import rule.
var ruleSentence = regexp.MustCompile(`(?i)must not (import|be imported|link)|may import|imports only|imports package|nothing imports it`)

type listedPackage struct {
	ImportPath string
	Dir        string
	Standard   bool
	GoFiles    []string
	Imports    []string
	Deps       []string
	Module     *struct{ Path string }
}

// listPackages runs `go list -deps -json ./...`: every package of the
// module and everything they depend on, without their tests.
func listPackages(t *testing.T) (module string, pkgs map[string]*listedPackage) {
	t.Helper()
	cmd := exec.Command("go", "list", "-deps", "-json", "./...")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, stderr.String())
	}
	pkgs = map[string]*listedPackage{}
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		p := new(listedPackage)
		if err := dec.Decode(p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		pkgs[p.ImportPath] = p
		if p.Dir != "" && p.Module != nil && filepath.Clean(p.Dir) == filepath.Clean(mustAbs(t, ".")) {
			module = p.Module.Path
		}
	}
	if module == "" {
		t.Fatal("go list did not list the root package")
	}
	return module, pkgs
}

func mustAbs(t *testing.T, p string) string {
	t.Helper()
	a, err := filepath.Abs(p)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// matches reports whether the module-relative package rel matches pattern
// ("x" is x alone, "x/..." is x and every package below it; "std:p" is the
// standard library's package p, which rel names as "std:"+path).
func matches(rel, pattern string) bool {
	if base, ok := strings.CutSuffix(pattern, "/..."); ok {
		return rel == base || strings.HasPrefix(rel, base+"/")
	}
	return rel == pattern
}

func matchesAny(rel string, patterns []string) bool {
	return slices.ContainsFunc(patterns, func(p string) bool { return matches(rel, p) })
}

func TestImportRules(t *testing.T) {
	t.Parallel()
	module, pkgs := listPackages(t)
	// rel names a package relative to the module, "std:path" for the
	// standard library, "" for anything else (third-party code is not
	// ruled here).
	rel := func(path string) (string, bool) {
		switch {
		case path == module:
			return "", true
		case strings.HasPrefix(path, module+"/"):
			return strings.TrimPrefix(path, module+"/"), true
		case pkgs[path] != nil && pkgs[path].Standard:
			return "std:" + path, true
		}
		return "", false
	}
	var ours []string // module-relative names of the module's packages
	for path := range pkgs {
		if r, ok := rel(path); ok && !strings.HasPrefix(r, "std:") {
			ours = append(ours, r)
		}
	}
	slices.Sort(ours)
	full := func(r string) string {
		if r == "" {
			return module
		}
		return module + "/" + r
	}
	// chain returns how from reaches to: from -> ... -> to, by a shortest
	// path of direct imports, for a message that says where to cut.
	chain := func(from, to string) string {
		prev := map[string]string{from: ""}
		queue := []string{from}
		for len(queue) > 0 {
			p := queue[0]
			queue = queue[1:]
			if p == to {
				var hops []string
				for ; p != ""; p = prev[p] {
					r, _ := rel(p)
					hops = append(hops, strings.TrimPrefix(r, "std:"))
				}
				slices.Reverse(hops)
				return strings.Join(hops, " -> ")
			}
			if pkgs[p] == nil {
				continue
			}
			for _, next := range pkgs[p].Imports {
				if _, seen := prev[next]; !seen {
					prev[next] = p
					queue = append(queue, next)
				}
			}
		}
		return from + " -> ? -> " + to
	}

	bound := map[string]bool{}
	for _, rule := range importRules {
		for _, pattern := range rule.pkgs {
			n := 0
			for _, who := range ours {
				if !matches(who, pattern) {
					continue
				}
				n++
				bound[who] = true
				checkRule(t, rule, who, pkgs[full(who)], pkgs, rel, chain)
				if rule.importedOnlyBy == nil {
					continue
				}
				for _, by := range ours {
					if slices.Contains(pkgs[full(by)].Imports, full(who)) && !matchesAny(by, rule.importedOnlyBy) {
						allowed := fmt.Sprintf("only %q may", rule.importedOnlyBy)
						if len(rule.importedOnlyBy) == 0 {
							allowed = "only tests may"
						}
						t.Errorf("%s imports %s; its package comment (%s) says %s", by, who, rule.doc, allowed)
					}
				}
			}
			if n == 0 {
				t.Errorf("rule of %s: no package %q", rule.doc, pattern)
			}
		}
		if !ruleSentence.MatchString(packageDoc(t, rule.doc)) {
			t.Errorf("the package comment in %s states no import rule, but importRules has one for it", rule.doc)
		}
	}

	// Production code links no testing package, whatever its comment says.
	// (cmd/softatm is checked by its own rule above.)
	for _, who := range ours {
		if who != "cmd/softatm" && !matchesAny(who, productionExempt) {
			checkRule(t, importRule{doc: "cmd/softatm/main.go (production code)", notEven: productionForbidden},
				who, pkgs[full(who)], pkgs, rel, chain)
		}
	}

	// Every package comment that states an import rule has an entry above,
	// so no stated rule goes unchecked.
	for _, who := range ours {
		p := pkgs[full(who)]
		for _, f := range p.GoFiles {
			name, _ := filepath.Rel(mustAbs(t, "."), filepath.Join(p.Dir, f))
			if ruleSentence.MatchString(packageDoc(t, name)) && !bound[who] {
				t.Errorf("%s states an import rule that importRules does not check", name)
			}
		}
	}
}

// checkRule checks the package who (module-relative, listed as p) against
// rule.
func checkRule(t *testing.T, rule importRule, who string, p *listedPackage, pkgs map[string]*listedPackage,
	rel func(string) (string, bool), chain func(from, to string) string) {
	t.Helper()
	name := who
	if name == "" {
		name = "softatm (root)"
	}
	if rule.onlyDirect != nil {
		for _, imp := range p.Imports {
			r, ok := rel(imp)
			if !ok || strings.HasPrefix(r, "std:") || r == who {
				continue
			}
			if !matchesAny(r, rule.onlyDirect) {
				allowed := fmt.Sprintf("only %q", rule.onlyDirect)
				if len(rule.onlyDirect) == 0 {
					allowed = "none"
				}
				t.Errorf("%s imports %s; its package comment (%s) allows of this module's packages %s",
					name, imp, rule.doc, allowed)
			}
		}
	}
	for _, dep := range p.Deps {
		r, ok := rel(dep)
		if !ok || !matchesAny(r, rule.notEven) {
			continue
		}
		// Name every direct import through which dep comes in: each is a
		// place to cut.
		var through []string
		for _, imp := range p.Imports {
			if imp == dep || (pkgs[imp] != nil && slices.Contains(pkgs[imp].Deps, dep)) {
				through = append(through, name+" -> "+chain(imp, dep))
			}
		}
		t.Errorf("%s depends on %s (%s); its package comment (%s) forbids it",
			name, strings.TrimPrefix(r, "std:"), strings.Join(through, "; "), rule.doc)
	}
}

// packageDoc returns the package comment of the Go file at path (relative
// to the module root), or "" if it has none.
func packageDoc(t *testing.T, path string) string {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), path, nil, parser.PackageClauseOnly|parser.ParseComments)
	if err != nil {
		t.Fatal(err)
	}
	if f.Doc == nil {
		return ""
	}
	// One line, so that a rule's words may wrap.
	return strings.Join(strings.Fields(f.Doc.Text()), " ")
}
