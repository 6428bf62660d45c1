package inflate

import (
	"bytes"
	"compress/flate"
	"encoding/hex"
	"errors"
	"io"
	"strings"
	"testing"
)

// Two pieces of one raw deflate stream, each ended with Z_PARTIAL_FLUSH, as Python's
// zlib (and isync, through zlib) writes them: "1 NOOP\r\n", then "2 NOOP\r\n2 NOOP\r\n"
// with back-references into the first piece.
var (
	partial1, _ = hex.DecodeString("3254f0f3f70fe0e50208")
	partial2, _ = hex.DecodeString("2023341a20")
)

// TestPartialFlush: what a partial flush ended is readable without more input.
// compress/flate fails this: it returns nothing before the input ends, and then an
// error.
func TestPartialFlush(t *testing.T) {
	r := NewReader(bytes.NewReader(partial1))
	buf := make([]byte, 8)
	if _, err := io.ReadFull(r, buf); err != nil || string(buf) != "1 NOOP\r\n" {
		t.Fatalf("first piece: %q, %v", buf, err)
	}
	r = NewReader(io.MultiReader(bytes.NewReader(partial1), bytes.NewReader(partial2)))
	buf = make([]byte, 24)
	if _, err := io.ReadFull(r, buf); err != nil || string(buf) != "1 NOOP\r\n2 NOOP\r\n2 NOOP\r\n" {
		t.Fatalf("both pieces: %q, %v", buf, err)
	}
	if _, err := flate.NewReader(bytes.NewReader(partial1)).Read(buf); err == nil {
		t.Log("compress/flate now hands out partially flushed data too; this package may go")
	}
}

// TestSameAsFlate: on complete streams the output is compress/flate's.
func TestSameAsFlate(t *testing.T) {
	for _, level := range []int{flate.HuffmanOnly, flate.BestSpeed, flate.DefaultCompression, flate.BestCompression} {
		var b bytes.Buffer
		w, _ := flate.NewWriter(&b, level)
		text := strings.Repeat("a FETCH 1:* (FLAGS BODY.PEEK[HEADER])\r\n", 3000)
		w.Write([]byte(text))
		w.Flush()
		w.Write([]byte("more"))
		w.Close()
		got, err := io.ReadAll(NewReader(&b))
		if err != nil || string(got) != text+"more" {
			t.Errorf("level %d: %d bytes, %v", level, len(got), err)
		}
	}
}

// FuzzInflate compares with compress/flate: the same verdict on every input, and the
// same output, except that this package may hand out more of it before an error.
func FuzzInflate(f *testing.F) {
	f.Add(partial1)
	f.Add(append(append([]byte(nil), partial1...), partial2...))
	var b bytes.Buffer
	w, _ := flate.NewWriter(&b, flate.BestSpeed)
	w.Write([]byte("x LOGIN a b\r\nx SELECT INBOX\r\nx SELECT INBOX\r\n"))
	w.Close()
	f.Add(b.Bytes())
	f.Add([]byte{0x01, 0x05, 0x00, 0xfa, 0xff, 'h', 'e', 'l', 'l', 'o'})
	f.Fuzz(func(t *testing.T, in []byte) {
		ours, err1 := io.ReadAll(NewReader(bytes.NewReader(in)))
		std, err2 := io.ReadAll(flate.NewReader(bytes.NewReader(in)))
		if (err1 == nil) != (err2 == nil) {
			t.Fatalf("errors differ: %v, compress/flate %v", err1, err2)
		}
		if err1 == nil && !bytes.Equal(ours, std) || !bytes.HasPrefix(ours, std) {
			t.Fatalf("output differs: %q, compress/flate %q", ours, std)
		}
		var ce CorruptInputError
		if err1 != nil && !errors.As(err1, &ce) && !errors.Is(err1, io.ErrUnexpectedEOF) {
			t.Fatalf("unexpected error %v", err1)
		}
	})
}
