package maildir

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// IMAP keywords at delivery (a Sieve script's addflag "$Work", RFC 5232).
//
// A Maildir file name carries system flags as letters (":2,FS"), and Dovecot's
// keywords as the letters a-z that the folder's dovecot-keywords file assigns. That
// file is imapd's (it gives letters as users STORE keywords), and a keyword a script
// sets may have no letter yet; the delivery agent must not assign one, or two writers
// would share the file (one owner per file). So the keywords of a delivered message
// travel beside it instead: new/.<stem>.keywords, one keyword a line, where <stem> is
// the message file's name up to its first "," or ":". The delivery agent puts it in
// new/ before the message (DeliverNamedKeywords), as it puts messages there; imapd,
// which takes every file out of new/, reads it when it takes the message, gives the
// keywords letters in dovecot-keywords and the index, and removes it. A name starting
// with "." is ignored by every Maildir reader (Dovecot included) and by the quota sums.

const keywordsSuffix = ".keywords"

// KeywordsPath returns the path of the keywords file of the message file named name
// in the folder dir.
func KeywordsPath(dir, name string) string {
	return filepath.Join(dir, "new", "."+Stem(name)+keywordsSuffix)
}

// Stem returns a message file's name up to its first "," or ":": the part that stays
// when fields (",S=") and the info (":2,") are added or changed.
func Stem(name string) string {
	if i := strings.IndexAny(name, ",:"); i >= 0 {
		return name[:i]
	}
	return name
}

// IsKeywordsFile reports whether the name of a file in new/ is a keywords file, and
// returns the stem of its message's name.
func IsKeywordsFile(name string) (stem string, ok bool) {
	if !strings.HasPrefix(name, ".") {
		return "", false
	}
	return strings.CutSuffix(name[1:], keywordsSuffix)
}

// ReadKeywords returns the keywords left for the message file named name in the
// folder dir: nil, and no error, when there are none.
func ReadKeywords(dir, name string) ([]string, error) {
	b, err := os.ReadFile(KeywordsPath(dir, name))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("maildir: reading the keywords of %s: %w", name, err)
	}
	return strings.Fields(string(b)), nil
}

// RemoveKeywords removes the keywords file of the message file named name, once the
// keywords are in the index.
func RemoveKeywords(dir, name string) error {
	err := os.Remove(KeywordsPath(dir, name))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("maildir: removing the keywords of %s: %w", name, err)
	}
	return nil
}

// writeKeywords writes the keywords file of the message base in the folder dir through
// tmp/ (fsynced, then renamed, so that a reader sees all of it or nothing). The
// caller fsyncs new/.
func writeKeywords(dir, base, tmpName string, kws []string) (string, error) {
	for _, k := range kws {
		if k == "" || strings.ContainsFunc(k, func(r rune) bool { return r <= ' ' || r == 0x7f }) || k[0] == '\\' {
			return "", fmt.Errorf("maildir: delivering to %s: bad keyword %q", dir, k)
		}
	}
	tmp := filepath.Join(dir, "tmp", tmpName+keywordsSuffix)
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return "", err
	}
	_, err = f.WriteString(strings.Join(kws, "\n") + "\n")
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	final := KeywordsPath(dir, base)
	if err == nil {
		err = os.Rename(tmp, final)
	}
	if err != nil {
		os.Remove(tmp)
		return "", err
	}
	return final, nil
}
