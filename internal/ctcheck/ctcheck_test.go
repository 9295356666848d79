// Package ctcheck holds a repository-wide test: secrets, digests and MACs
// are compared in constant time everywhere, never with an early-exit
// comparison that lets response timing reveal how much of a guess was
// right.
package ctcheck

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// secretName matches the names of values that must only be compared in
// constant time: a secret, a digest of one, a MAC, a signature.
var secretName = regexp.MustCompile(`(?i)(secret|hash|digest|mac|signature|sum|verifier|challenge)$`)

// earlyExit are the functions that compare byte strings and stop at the
// first difference.
var earlyExit = map[string]bool{
	"bytes.Equal": true, "bytes.Compare": true, "strings.Compare": true, "strings.EqualFold": true,
	"slices.Equal": true, "reflect.DeepEqual": true,
}

// TestSecretsComparedInConstantTime parses every non-test Go file of the
// module (test-support packages, named *test, excepted) and fails on an
// ==, != or early-exit comparison function applied to a value named like a
// secret, digest or MAC (both operands non-constant: comparing a length or
// against a literal reveals nothing). A comparison of values that are not
// secret (the digest of a public tool definition, say) says so with a
// "ct:public" comment on its line, followed by why.
func TestSecretsComparedInConstantTime(t *testing.T) {
	root := filepath.Join("..", "..")
	fset := token.NewFileSet()
	checked := 0
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if n := d.Name(); path != root && (strings.HasPrefix(n, ".") || n == "node_modules" || n == "testdata" || strings.HasSuffix(n, "test")) {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, parser.ParseComments)
		if err != nil {
			return err
		}
		checked++
		public := map[int]bool{}
		for _, cg := range f.Comments {
			for _, c := range cg.List {
				if strings.Contains(c.Text, "ct:public") {
					public[fset.Position(c.Pos()).Line] = true
				}
			}
		}
		for _, bad := range earlyExitComparisons(f) {
			if public[fset.Position(bad.Pos()).Line] {
				continue
			}
			t.Errorf("%s: %s compares a secret, digest or MAC with an early-exit comparison; use crypto/subtle.ConstantTimeCompare or hmac.Equal",
				fset.Position(bad.Pos()), render(bad))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if checked < 100 {
		t.Fatalf("only %d Go files checked: the walk does not cover the module", checked)
	}
}

// earlyExitComparisons returns the comparisons in f that TestSecretsComparedInConstantTime refuses.
func earlyExitComparisons(f *ast.File) []ast.Node {
	var out []ast.Node
	ast.Inspect(f, func(n ast.Node) bool {
		switch n := n.(type) {
		case *ast.BinaryExpr:
			if (n.Op == token.EQL || n.Op == token.NEQ) && comparable(n.X, n.Y) {
				out = append(out, n)
			}
		case *ast.CallExpr:
			if sel, ok := n.Fun.(*ast.SelectorExpr); ok && len(n.Args) == 2 {
				if pkg, ok := sel.X.(*ast.Ident); ok && earlyExit[pkg.Name+"."+sel.Sel.Name] && comparable(n.Args[0], n.Args[1]) {
					out = append(out, n)
				}
			}
		}
		return true
	})
	return out
}

// comparable reports whether x and y are both non-constant and one of them
// is named like a secret.
func comparable(x, y ast.Expr) bool {
	if constant(x) || constant(y) {
		return false
	}
	return secretName.MatchString(name(x)) || secretName.MatchString(name(y))
}

// name is the last name in an identifier, selector, slice or conversion
// expression: sum for sum[:], Hash for rec.Hash, mac for string(mac).
func name(e ast.Expr) string {
	switch e := e.(type) {
	case *ast.Ident:
		return e.Name
	case *ast.SelectorExpr:
		return e.Sel.Name
	case *ast.SliceExpr:
		return name(e.X)
	case *ast.ParenExpr:
		return name(e.X)
	case *ast.CallExpr:
		if len(e.Args) == 1 {
			if _, ok := e.Fun.(*ast.Ident); ok { // a conversion such as string(b)
				return name(e.Args[0])
			}
		}
	}
	return ""
}

// constant reports whether e is a literal, nil, a length, or a named
// constant in upper case (which cannot hold a secret).
func constant(e ast.Expr) bool {
	switch e := e.(type) {
	case *ast.BasicLit:
		return true
	case *ast.Ident:
		return e.Name == "nil" || e.Name == "true" || e.Name == "false"
	case *ast.CallExpr:
		if id, ok := e.Fun.(*ast.Ident); ok && (id.Name == "len" || id.Name == "cap") {
			return true
		}
	case *ast.UnaryExpr:
		return constant(e.X)
	}
	return false
}

func render(n ast.Node) string {
	switch n := n.(type) {
	case *ast.BinaryExpr:
		return name(n.X) + " " + n.Op.String() + " " + name(n.Y)
	case *ast.CallExpr:
		sel := n.Fun.(*ast.SelectorExpr)
		return sel.X.(*ast.Ident).Name + "." + sel.Sel.Name + "(" + name(n.Args[0]) + ", " + name(n.Args[1]) + ")"
	}
	return "a comparison"
}
