package storetest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/mcpguard/mcpguard/store"
)

// RunToolPins is the conformance suite for a store.ToolPinStore. open must
// return a new, empty store.
func RunToolPins(t *testing.T, open func(t *testing.T) store.ToolPinStore) {
	ctx := context.Background()
	at := time.Date(2026, 3, 4, 5, 6, 7, 8000, time.UTC)

	t.Run("MissingIsNotFound", func(t *testing.T) {
		s := open(t)
		if _, err := s.GetToolPin(ctx, "github", "create_issue"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("GetToolPin(missing) error = %v, want ErrNotFound", err)
		}
	})

	t.Run("PutGetReplaceList", func(t *testing.T) {
		s := open(t)
		pins := []*store.ToolPin{
			{Upstream: "github", Tool: "create_issue", Hash: "aa", PinnedAt: at},
			{Upstream: "docs", Tool: "search", Hash: "bb", PinnedAt: at},
			{Upstream: "github", Tool: "close_issue", Hash: "cc", PinnedAt: at},
		}
		for _, p := range pins {
			if err := s.PutToolPin(ctx, p); err != nil {
				t.Fatalf("PutToolPin: %v", err)
			}
		}
		got, err := s.GetToolPin(ctx, "github", "create_issue")
		if err != nil || got.Hash != "aa" || !got.PinnedAt.Equal(at) {
			t.Fatalf("GetToolPin = %+v, %v", got, err)
		}
		// The same tool name on another upstream is another pin.
		if _, err := s.GetToolPin(ctx, "docs", "create_issue"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("pins are not keyed by upstream: %v", err)
		}
		later := at.Add(time.Hour)
		if err := s.PutToolPin(ctx, &store.ToolPin{Upstream: "github", Tool: "create_issue", Hash: "dd", PinnedAt: later}); err != nil {
			t.Fatalf("PutToolPin (replace): %v", err)
		}
		got, err = s.GetToolPin(ctx, "github", "create_issue")
		if err != nil || got.Hash != "dd" || !got.PinnedAt.Equal(later) {
			t.Fatalf("after replace GetToolPin = %+v, %v", got, err)
		}
		list, err := s.ListToolPins(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var keys []string
		for _, p := range list {
			keys = append(keys, p.Upstream+"/"+p.Tool+"="+p.Hash)
		}
		want := []string{"docs/search=bb", "github/close_issue=cc", "github/create_issue=dd"}
		if len(keys) != len(want) {
			t.Fatalf("ListToolPins = %v, want %v", keys, want)
		}
		for i := range want {
			if keys[i] != want[i] {
				t.Fatalf("ListToolPins = %v, want %v", keys, want)
			}
		}
	})
}

// RunUpstreamStatus is the conformance suite for a
// store.UpstreamStatusStore. open must return a new, empty store.
func RunUpstreamStatus(t *testing.T, open func(t *testing.T) store.UpstreamStatusStore) {
	ctx := context.Background()
	at := time.Date(2026, 3, 4, 5, 6, 7, 8000, time.UTC)
	s := open(t)
	if list, err := s.ListUpstreamStatus(ctx); err != nil || len(list) != 0 {
		t.Fatalf("empty ListUpstreamStatus = %v, %v", list, err)
	}
	for _, st := range []*store.UpstreamStatus{
		{Name: "github", Status: []byte(`{"state":"starting"}`), UpdatedAt: at},
		{Name: "docs", Status: []byte(`{"state":"ready"}`), UpdatedAt: at},
		{Name: "github", Status: []byte(`{"state":"ready"}`), UpdatedAt: at.Add(time.Second)},
	} {
		if err := s.PutUpstreamStatus(ctx, st); err != nil {
			t.Fatal(err)
		}
	}
	list, err := s.ListUpstreamStatus(ctx)
	if err != nil || len(list) != 2 {
		t.Fatalf("ListUpstreamStatus = %v, %v", list, err)
	}
	if list[0].Name != "docs" || list[1].Name != "github" || string(list[1].Status) != `{"state":"ready"}` || !list[1].UpdatedAt.Equal(at.Add(time.Second)) {
		t.Fatalf("ListUpstreamStatus = %+v %+v", list[0], list[1])
	}
}
