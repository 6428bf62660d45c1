package main

import (
	"reflect"
	"testing"

	"github.com/emersion/go-imap/v2/imapclient"
)

func TestMakeThreads(t *testing.T) {
	// (1 2 (3)(5 6))(4)((7)(8)): 7 and 8 answer a message that is not in the folder.
	data := []imapclient.ThreadData{
		{Chain: []uint32{1, 2}, SubThreads: []imapclient.ThreadData{{Chain: []uint32{3}}, {Chain: []uint32{5, 6}}}},
		{Chain: []uint32{4}},
		{SubThreads: []imapclient.ThreadData{{Chain: []uint32{7}}, {Chain: []uint32{8}}}},
	}
	got := makeThreads(data)
	want := []thread{
		{uids: []uint32{4}, depths: []int{0}, latest: 4},
		{uids: []uint32{1, 2, 3, 5, 6}, depths: []int{0, 1, 2, 2, 3}, latest: 6},
		{uids: []uint32{7, 8}, depths: []int{0, 0}, latest: 8},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("makeThreads:\n got %+v\nwant %+v", got, want)
	}
}

func TestOrderCache(t *testing.T) {
	c := newOrderCache(120)
	key := func(user string, next uint32) orderKey {
		return orderKey{user: user, view: folderView{name: "INBOX", uidValidity: 1, uidNext: next, exists: 3}, order: "date"}
	}
	a := &order{uids: []uint32{1, 2, 3}} // weighs 19
	c.put(key("a", 4), a)
	if c.get(key("a", 4)) != a {
		t.Fatal("a kept order is not found")
	}
	for _, k := range []orderKey{key("b", 4), key("a", 5), {user: "a", view: folderView{name: "Junk", uidValidity: 1, uidNext: 4, exists: 3}, order: "date"}} {
		if c.get(k) != nil {
			t.Fatalf("%+v: found the order of another user, folder or state", k)
		}
	}
	// a, b, d (19, 56, 36) fill the budget; a was used last, so the next put drops b.
	b, d := &order{uids: make([]uint32, 40)}, &order{uids: make([]uint32, 20)}
	c.put(key("b", 4), b)
	c.put(key("d", 4), d)
	c.get(key("a", 4))
	c.put(key("e", 4), &order{uids: make([]uint32, 10)})
	if c.get(key("b", 4)) != nil || c.get(key("a", 4)) != a || c.get(key("d", 4)) != d {
		t.Fatal("the cache did not drop the least recently used order")
	}
	if c.used > c.max {
		t.Fatalf("cache holds %d over its budget %d", c.used, c.max)
	}
	c.put(key("f", 4), &order{uids: make([]uint32, 200)})
	if c.get(key("f", 4)) != nil {
		t.Fatal("an order over the whole budget was kept")
	}
}

func TestListLinks(t *testing.T) {
	d := listData{base: base{Folder: "Lists/Go"}, Sort: "subject", Rev: true, Query: "a b"}
	if got, want := d.Link(3, 0), "/mail?f=Lists%2FGo&page=3&q=a+b&sort=subject&view=list"; got != want {
		t.Errorf("Link = %s, want %s", got, want)
	}
	if got, want := d.Toggle(), "/mail?f=Lists%2FGo&q=a+b&view=threads"; got != want {
		t.Errorf("Toggle = %s, want %s", got, want)
	}
	d.Threaded = true
	if got, want := d.Link(2, 17), "/mail?f=Lists%2FGo&open=17&page=2&q=a+b&view=threads"; got != want {
		t.Errorf("Link = %s, want %s", got, want)
	}
	if got, want := d.Reversed(), "/mail?f=Lists%2FGo&q=a+b&rev=0&view=threads"; got != want {
		t.Errorf("Reversed = %s, want %s", got, want)
	}
}
