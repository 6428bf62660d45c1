package landlock

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// The confined half of TestRestrictWrites runs in a child process (a Landlock domain
// lasts as long as the process): the test binary again, with LANDLOCK_TEST_DIR set.
func TestMain(m *testing.M) {
	if dir := os.Getenv("LANDLOCK_TEST_DIR"); dir != "" {
		os.Exit(confinedChild(dir))
	}
	os.Exit(m.Run())
}

func confinedChild(dir string) int {
	allowed := filepath.Join(dir, "allowed")
	if _, err := RestrictWrites(allowed); err != nil {
		fmt.Println("restrict:", err)
		return 3
	}
	try := func(what string, err error) {
		if err != nil {
			fmt.Printf("%s: denied\n", what)
		} else {
			fmt.Printf("%s: ok\n", what)
		}
	}
	try("write inside", os.WriteFile(filepath.Join(allowed, "tmp", "a"), []byte("x"), 0o600))
	try("rename across directories inside", os.Rename(filepath.Join(allowed, "tmp", "a"), filepath.Join(allowed, "new", "a")))
	try("mkdir inside", os.Mkdir(filepath.Join(allowed, "sub"), 0o700))
	try("remove inside", os.Remove(filepath.Join(allowed, "new", "a")))
	try("write outside", os.WriteFile(filepath.Join(dir, "outside"), []byte("x"), 0o600))
	try("overwrite outside", os.WriteFile(filepath.Join(dir, "existing"), []byte("y"), 0o600))
	try("remove outside", os.Remove(filepath.Join(dir, "existing")))
	_, err := os.ReadFile(filepath.Join(dir, "existing"))
	try("read outside", err)
	try("execute", exec.Command("/bin/true").Run())
	return 0
}

func TestRestrictWrites(t *testing.T) {
	if abi := ABI(); abi < 2 {
		t.Skipf("this kernel offers Landlock ABI %d; Postern needs 2 or later", abi)
	}
	dir := t.TempDir()
	for _, d := range []string{"allowed/tmp", "allowed/new"} {
		os.MkdirAll(filepath.Join(dir, d), 0o700)
	}
	os.WriteFile(filepath.Join(dir, "existing"), []byte("x"), 0o600)
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "LANDLOCK_TEST_DIR="+dir)
	out, err := cmd.CombinedOutput()
	if strings.Contains(string(out), ErrCgo.Error()) {
		if os.Getenv("CI") == "true" {
			t.Fatalf("the test binary is built with cgo (make test builds with CGO_ENABLED=0): %s", out)
		}
		t.Skipf("built with cgo: %s", out)
	}
	if err != nil {
		t.Fatalf("confined child: %v\n%s", err, out)
	}
	want := `write inside: ok
rename across directories inside: ok
mkdir inside: ok
remove inside: ok
write outside: denied
overwrite outside: denied
remove outside: denied
read outside: ok
execute: denied
`
	if string(out) != want {
		t.Errorf("confined child says\n%s\nwant\n%s", out, want)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "existing")); string(b) != "x" {
		t.Errorf("the file outside was changed: %q", b)
	}
}
