package app

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/mcpguard/mcpguard/cluster"
	"github.com/mcpguard/mcpguard/internal/servicetest"
	"github.com/mcpguard/mcpguard/store/postgres"
)

// /readyz answers 200 only while the store and Redis answer, and names the
// one that does not (never its address).
func TestReadiness(t *testing.T) {
	ctx := context.Background()
	st, err := postgres.Open(ctx, servicetest.PostgresSchema(t))
	if err != nil {
		t.Fatal(err)
	}
	rdb, err := cluster.Connect(servicetest.RedisURL(t))
	if err != nil {
		t.Fatal(err)
	}
	defer rdb.Close()
	dead, err := cluster.Connect("redis://127.0.0.1:1/0")
	if err != nil {
		t.Fatal(err)
	}
	defer dead.Close()
	get := func(h http.Handler) (int, string) {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", "/readyz", nil))
		return rec.Code, rec.Body.String()
	}
	if code, body := get(readiness(st, rdb)); code != 200 {
		t.Fatalf("all up: %d %q", code, body)
	}
	if code, body := get(readiness(st, dead)); code != http.StatusServiceUnavailable || !strings.Contains(body, "redis") || strings.Contains(body, "127.0.0.1") {
		t.Fatalf("redis down: %d %q", code, body)
	}
	st.Close() // the database is gone
	if code, body := get(readiness(st, rdb)); code != http.StatusServiceUnavailable || !strings.Contains(body, "store") {
		t.Fatalf("store down: %d %q", code, body)
	}
}
