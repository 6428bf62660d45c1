package smtp

import "testing"

func TestParseNotify(t *testing.T) {
	for in, want := range map[string]string{"never": "NEVER", "SUCCESS": "SUCCESS", "failure,Delay": "FAILURE,DELAY"} {
		if got, ok := ParseNotify(in); !ok || got != want {
			t.Errorf("ParseNotify(%q) = %q, %v", in, got, ok)
		}
	}
	for _, in := range []string{"", "NEVER,SUCCESS", "SUCCESS,SUCCESS", "SUCCESS,", "ALWAYS"} {
		if _, ok := ParseNotify(in); ok {
			t.Errorf("ParseNotify(%q) accepted", in)
		}
	}
}
