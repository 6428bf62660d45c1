package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"

	"postern/pkg/control"
	"postern/pkg/junk"
	"postern/pkg/mbox"
)

// The commands of this file train spamd's classifier and show what it learned, over
// control/spamd. spamd is the sole owner of its database: mailctl hands it each message
// as a descriptor and never opens the database itself.

// message is one message to learn: Size octets at Offset of a file.
type message struct {
	path         string
	offset, size int64
}

// messagesIn lists the messages of path: a Maildir folder's cur/ and new/ files, the
// messages of an mbox file, or the file itself.
func messagesIn(path string) ([]message, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if fi.IsDir() {
		var out []message
		found := false
		for _, sub := range []string{"cur", "new"} {
			ents, err := os.ReadDir(filepath.Join(path, sub))
			if errors.Is(err, os.ErrNotExist) {
				continue
			}
			if err != nil {
				return nil, err
			}
			found = true
			for _, e := range ents {
				if !e.Type().IsRegular() {
					continue
				}
				p := filepath.Join(path, sub, e.Name())
				info, err := e.Info()
				if err != nil {
					return nil, err
				}
				out = append(out, message{p, 0, info.Size()})
			}
		}
		if !found {
			return nil, fmt.Errorf("%s is a directory but not a Maildir folder (no cur/ or new/)", path)
		}
		sort.Slice(out, func(i, j int) bool { return out[i].path < out[j].path })
		return out, nil
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is neither a file nor a Maildir folder", path)
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return splitMbox(path, f, fi.Size())
}

// splitMbox returns the messages of an mbox file (pkg/mbox finds them). A file that
// does not start with "From " is one message.
func splitMbox(path string, r io.Reader, size int64) ([]message, error) {
	s := mbox.NewScanner(r)
	var out []message
	for {
		m, err := s.Next()
		switch {
		case err == io.EOF:
			return out, nil
		case errors.Is(err, mbox.ErrNotMbox):
			return []message{{path, 0, size}}, nil
		case err != nil:
			return nil, err
		}
		out = append(out, message{path, m.Offset, m.Size})
	}
}

// key names m in a training run (junk.TrainingOrder orders by it): its file, and for a
// message of an mbox its offset too (never 0: the "From " line comes first).
func (m message) key() string {
	p := filepath.Clean(m.path)
	if m.offset == 0 {
		return p
	}
	return p + "#" + strconv.FormatInt(m.offset, 10)
}

// sample is a message of a training run and its class.
type sample struct {
	message
	spam bool
}

// classes returns whether each of the PATHs of spam train is spam or ham: the class of
// the last --spam or --ham before it.
func classes(paths []string, placed []placedFlag) ([]bool, error) {
	spam := make([]bool, len(paths))
	for i, p := range paths {
		j := len(placed) - 1
		for j >= 0 && placed[j].At > i {
			j--
		}
		if j < 0 {
			return nil, usagef("%s comes before --spam or --ham: give the class of the PATHs that follow (--spam PATH... --ham PATH...)", p)
		}
		spam[i] = placed[j].Name == "spam"
	}
	for i, f := range placed {
		if i+1 < len(placed) && placed[i+1].At == f.At || f.At == len(paths) {
			return nil, usagef("--%s is followed by no PATH", f.Name)
		}
	}
	return spam, nil
}

func runSpamTrain(a *app, o *options, args []string) error {
	if o.passes < 1 || o.passes > 100 {
		return usagef("--passes is %d: give 1 to 100", o.passes)
	}
	isSpam, err := classes(args, o.placed)
	if err != nil {
		return err
	}
	user := ""
	if o.user != "" {
		if user, err = checkAddress(o.user, false); err != nil {
			return usagef("%v", err)
		}
		// spamd names a recipient's corpus by the lower-cased address.
		user = strings.ToLower(user)
	}
	// Every message first: each pass takes them in its own order.
	var samples []sample
	var keys []string
	seen := map[string]int{}
	for i, p := range args {
		ms, err := messagesIn(p)
		if err != nil {
			return fmt.Errorf("reading %s: %w", p, err)
		}
		for _, m := range ms {
			k := m.key()
			if j, ok := seen[k]; ok {
				if samples[j].spam != isSpam[i] {
					return fmt.Errorf("%s is given both as spam and as ham", k)
				}
				continue // named twice: learned once
			}
			seen[k] = len(samples)
			samples = append(samples, sample{m, isSpam[i]})
			keys = append(keys, k)
		}
	}
	cfg, err := a.loadConfig()
	if err != nil {
		return err
	}
	files := &openFiles{max: maxOpenFiles}
	defer files.closeAll()
	gone := make([]bool, len(samples))
	// The classes given, and the counts of each (indexed by b2i): of sent[c] messages,
	// learned[c] changed the corpus or, with --on-error, the classifier.
	var given [2]bool
	for _, s := range isSpam {
		given[b2i(s)] = true
	}
	var firstLearned, firstSent [2]int
	for pass := range o.passes {
		var learned, sent [2]int
		for _, i := range junk.TrainingOrder(keys, pass) {
			s := samples[i]
			if gone[i] {
				continue
			}
			f, err := files.open(s.path)
			if errors.Is(err, os.ErrNotExist) {
				// A Maildir message moved from new/ to cur/ or deleted since it was
				// listed: whatever the rest of the run teaches is still right.
				fmt.Fprintf(a.stderr, "mailctl spam train: skipped %s: it is gone since the start of the run\n", clean(s.key()))
				gone[i] = true
				continue
			}
			if err != nil {
				return fmt.Errorf("opening a message: %w", err)
			}
			var res control.SpamLearnResult
			req := control.SpamLearnRequest{Spam: s.spam, User: user, Offset: s.offset, Size: s.size, OnError: o.onError}
			if err := a.call(cfg, "spamd", control.SpamLearn, req, &res, f); err != nil {
				return fmt.Errorf("learning %s: %w", s.key(), err)
			}
			sent[b2i(s.spam)]++
			if res.Changed {
				learned[b2i(s.spam)]++
			}
		}
		if pass == 0 {
			firstLearned, firstSent = learned, sent
		}
		if !o.onError {
			continue
		}
		for _, c := range []int{1, 0} {
			if given[c] {
				fmt.Fprintf(a.stdout, "pass %d: %d messages learned as %s, %d classified right\n", pass+1, learned[c], className(c), sent[c]-learned[c])
			}
		}
		if learned == [2]int{} {
			// The classifier did not change: another pass would find it the same.
			if pass+1 < o.passes {
				fmt.Fprintf(a.stdout, "stopped after pass %d: it learned nothing\n", pass+1)
			}
			break
		}
	}
	if !o.onError {
		for _, c := range []int{1, 0} {
			if given[c] {
				fmt.Fprintf(a.stdout, "%d messages learned as %s, %d known already\n", firstLearned[c], className(c), firstSent[c]-firstLearned[c])
			}
		}
	}
	return nil
}

// b2i is 1 for spam and 0 for ham, the index of a class in spam train's counts.
func b2i(spam bool) int {
	if spam {
		return 1
	}
	return 0
}

func className(c int) string {
	if c == 1 {
		return "spam"
	}
	return "ham"
}

// maxOpenFiles bounds the files a training run keeps open at once, far below the usual
// limit of 1,024 descriptors.
const maxOpenFiles = 64

// openFiles keeps the files of a training run open from one message to the next, up to
// max at once: an mbox holds many messages, and each pass takes them in another order.
// Beyond max, the file used least recently is closed.
type openFiles struct {
	max   int
	files []*os.File // least recently used first
}

func (of *openFiles) open(path string) (*os.File, error) {
	for i, f := range of.files {
		if f.Name() == path {
			copy(of.files[i:], of.files[i+1:])
			of.files[len(of.files)-1] = f
			return f, nil
		}
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	if len(of.files) == of.max {
		of.files[0].Close()
		of.files = slices.Delete(of.files, 0, 1)
	}
	of.files = append(of.files, f)
	return f, nil
}

func (of *openFiles) closeAll() {
	for _, f := range of.files {
		f.Close()
	}
	of.files = nil
}

func runSpamStatus(a *app, o *options, args []string) error {
	cfg, err := a.loadConfig()
	if err != nil {
		return err
	}
	var res control.SpamStatusResult
	if err := a.call(cfg, "spamd", control.SpamStatus, nil, &res); err != nil {
		return err
	}
	tw := tabwriter.NewWriter(a.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "CORPUS\tSPAM\tHAM\tFEATURES")
	fmt.Fprintf(tw, "global\t%d\t%d\t%d\n", res.Global.Spam, res.Global.Ham, res.Global.Tokens)
	for _, u := range res.Users {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\n", clean(u.User), u.Spam, u.Ham, u.Tokens)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if res.Global.Spam >= res.MinSpam && res.Global.Ham >= res.MinHam {
		fmt.Fprintf(a.stdout, "the classifier gives an opinion on all mail (it needs %d spam and %d ham)\n", res.MinSpam, res.MinHam)
	} else {
		fmt.Fprintf(a.stdout, "the classifier gives no opinion yet: it needs %d spam and %d ham, global and recipient's together\n", res.MinSpam, res.MinHam)
	}
	return nil
}
