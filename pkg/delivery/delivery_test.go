package delivery

import (
	"errors"
	"io"
	"strings"
	"testing"
)

func TestBody(t *testing.T) {
	src := strings.NewReader("headabcdef")
	if b, err := io.ReadAll(Body(src, 4, 3)); err != nil || string(b) != "abc" {
		t.Errorf("long source: %q %v", b, err)
	}
	_, err := io.ReadAll(Body(src, 4, 10))
	var re *ReadError
	if !errors.Is(err, ErrShort) || !errors.As(err, &re) {
		t.Errorf("short source: %v", err)
	}
}
