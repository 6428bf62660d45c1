package main

import (
	"context"
	"path/filepath"
	"reflect"
	"sync"
	"testing"
	"time"

	"postern/pkg/auth"
	"postern/pkg/control"
	"postern/pkg/ipc"
)

// recorder is a subscriber that notes the changes it hears.
type recorder struct {
	mu         sync.Mutex
	events     []auth.AccountEvent
	subscribed chan struct{}
	once       sync.Once
}

func (r *recorder) Subscribed() { r.once.Do(func() { close(r.subscribed) }) }
func (r *recorder) Lost(error)  {}
func (r *recorder) Changed(ev auth.AccountEvent) {
	r.mu.Lock()
	r.events = append(r.events, ev)
	r.mu.Unlock()
}

func (r *recorder) got() []auth.AccountEvent {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]auth.AccountEvent(nil), r.events...)
}

// TestWatch: every change that must reach the daemons that cache about accounts does,
// and has been acted on by the time the administrator's request returns; a subscriber
// that does not answer does not hold authd up for longer than auth.WatchAckTimeout.
func TestWatch(t *testing.T) {
	e := start(t, true)
	e.call(t, control.DomainAdd, control.DomainRequest{Name: "example.test"}, nil)
	for _, u := range []string{"bob@example.test", "carol@example.test", "dave@other.test"} {
		if u == "dave@other.test" {
			e.call(t, control.DomainAdd, control.DomainRequest{Name: "other.test"}, nil)
		}
		e.call(t, control.UserAdd, control.UserRequest{Address: u, Password: "Sturdy enough pass 9x", Quota: -1}, nil)
	}
	var ap control.AppPassword
	e.call(t, control.AppPasswordAdd, control.AppPasswordRequest{Address: "bob@example.test", Name: "phone"}, &ap)

	r := &recorder{subscribed: make(chan struct{})}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go auth.Watch(ctx, filepath.Join(e.dir, "auth"), e.a.Log, r)
	select {
	case <-r.subscribed:
	case <-time.After(30 * time.Second):
		t.Fatal("no subscription")
	}

	e.call(t, control.UserPasswd, control.UserRequest{Address: "Bob@Example.test", Password: "Another sturdy pass 7y"}, nil)
	e.call(t, control.AppPasswordRevoke, control.AppPasswordRequest{Address: "bob@example.test", Name: "phone"}, nil)
	e.call(t, control.UserDisable, control.UserDisableRequest{Address: "bob@example.test", Disabled: true}, nil)
	e.call(t, control.UserDisable, control.UserDisableRequest{Address: "bob@example.test", Disabled: false}, nil)
	e.call(t, control.UserDel, control.UserRequest{Address: "carol@example.test"}, nil)
	e.call(t, control.DomainDel, control.DomainRequest{Name: "other.test", Force: true}, nil)
	want := []auth.AccountEvent{
		{Address: "bob@example.test", Change: auth.ChangePassword},
		{Address: "bob@example.test", Change: auth.ChangeAppPassword},
		{Address: "bob@example.test", Change: auth.ChangeDisabled},
		{Address: "carol@example.test", Change: auth.ChangeDeleted},
		{Address: "dave@other.test", Change: auth.ChangeDeleted},
	}
	// Each was acknowledged before its request returned: no waiting here.
	if got := r.got(); !reflect.DeepEqual(got, want) {
		t.Errorf("changes heard:\n%v\nwant\n%v", got, want)
	}
}

// TestWatchSilentSubscriber: a subscriber that never acknowledges is hung up on, and the
// change is made all the same.
func TestWatchSilentSubscriber(t *testing.T) {
	e := start(t, true)
	e.a.WatchTimeout = 100 * time.Millisecond
	e.call(t, control.DomainAdd, control.DomainRequest{Name: "example.test"}, nil)
	e.call(t, control.UserAdd, control.UserRequest{Address: "bob@example.test", Password: "Sturdy enough pass 9x", Quota: -1}, nil)
	c, err := ipc.Dial(filepath.Join(e.dir, "auth"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Call(auth.OpWatch, nil, nil); err != nil {
		t.Fatal(err)
	}
	e.call(t, control.UserDisable, control.UserDisableRequest{Address: "bob@example.test", Disabled: true}, nil)
	var ev auth.AccountEvent
	if _, err := c.Receive(&ev); err != nil || ev.Change != auth.ChangeDisabled {
		t.Fatalf("the silent subscriber got %+v, %v", ev, err)
	}
	// authd hung up on it.
	c.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := c.Receive(&ev); err == nil {
		t.Errorf("the connection of the silent subscriber is still open: %+v", ev)
	}
	var list control.UserListResult
	e.call(t, control.UserList, control.ListRequest{}, &list)
	if len(list.Users) != 1 || !list.Users[0].Disabled {
		t.Errorf("users after the disable: %+v", list.Users)
	}
}
