package main

import (
	"errors"
	"slices"
	"strings"

	bolt "go.etcd.io/bbolt"
)

// CREATE-SPECIAL-USE (RFC 6154 §3): CREATE name (USE (\Archive ...)) gives a folder
// special-use attributes, kept under the key "s" of its index bucket (space-separated),
// so that they move with RENAME and go with DELETE. LIST shows them, else the default
// ones of the standard folders (specialUse).
var keySpecialUse = []byte("s")

// creatableUses are the attributes CREATE gives: those of real folders. \All and
// \Flagged name virtual mailboxes, which imapd does not have.
var creatableUses = []string{`\Archive`, `\Drafts`, `\Junk`, `\Sent`, `\Trash`}

// errUseAttr answers a CREATE with an attribute imapd does not give (RFC 6154 §3:
// NO [USEATTR]).
var errUseAttr = errors.New("unsupported special-use attribute")

// checkUses returns the attributes in their canonical case, or errUseAttr.
func checkUses(uses []string) ([]string, error) {
	var out []string
	for _, u := range uses {
		i := -1
		for j, c := range creatableUses {
			if strings.EqualFold(c, u) {
				i = j
			}
		}
		if i < 0 {
			return nil, errUseAttr
		}
		if !has(out, creatableUses[i]) {
			out = append(out, creatableUses[i])
		}
	}
	return out, nil
}

// setSpecialUse records the attributes of the folder name.
func (a *Account) setSpecialUse(name string, uses []string) error {
	mb, err := a.openMailbox(name)
	if err != nil {
		return err
	}
	defer a.release(mb)
	return a.db.Update(func(tx *bolt.Tx) error {
		b, err := folderBucket(tx, mb.key, true)
		if err != nil {
			return err
		}
		return b.Put(keySpecialUse, []byte(strings.Join(uses, " ")))
	})
}

// createdUses returns the attributes given at CREATE, by folder name.
func (a *Account) createdUses() map[string]string {
	out := map[string]string{}
	a.db.View(func(tx *bolt.Tx) error {
		return tx.ForEach(func(k []byte, b *bolt.Bucket) error {
			if v := b.Get(keySpecialUse); len(v) > 0 {
				out[nameOf(string(k))] = string(v)
			}
			return nil
		})
	})
	return out
}

// folderUses returns the special-use attributes of the folder name (space-separated):
// those given at CREATE (created, from createdUses), else those of the standard folders.
func folderUses(created map[string]string, name string) string {
	if u := created[name]; u != "" {
		return u
	}
	return specialUse(name)
}

// hasUse says whether the folder name has the special-use attribute use.
func hasUse(created map[string]string, name, use string) bool {
	return slices.Contains(strings.Fields(folderUses(created, name)), use)
}
