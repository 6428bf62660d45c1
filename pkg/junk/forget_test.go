package junk

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestForget(t *testing.T) {
	db, err := Open(filepath.Join(t.TempDir(), "junk.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	msg := "Subject: cheap pills\r\n\r\nbuy cheap pills now\r\n"
	for _, u := range []string{"a@example.test", "b@example.test"} {
		if _, err := db.Learn(u, strings.NewReader(msg), int64(len(msg)), true); err != nil {
			t.Fatal(err)
		}
	}
	if ok, err := db.Forget("a@example.test"); !ok || err != nil {
		t.Fatalf("Forget: %v, %v", ok, err)
	}
	if users, _ := db.Users(); !slices.Equal(users, []string{"b@example.test"}) {
		t.Errorf("users after Forget: %q", users)
	}
	if st, _ := db.Stats("a@example.test"); st.Spam != 0 || st.Tokens != 0 {
		t.Errorf("the forgotten corpus: %+v", st)
	}
	if st, _ := db.Stats("b@example.test"); st.Spam != 1 {
		t.Errorf("another user's corpus: %+v", st)
	}
	if ok, err := db.Forget("a@example.test"); ok || err != nil {
		t.Errorf("Forget again: %v, %v", ok, err)
	}
	if _, err := db.Forget(""); err == nil {
		t.Error("Forget of the global corpus succeeded")
	}
}
