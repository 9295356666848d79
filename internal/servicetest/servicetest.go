// Package servicetest gives tests the PostgreSQL and Redis servers that
// .ci/services starts: their URLs come from MCPGUARD_TEST_POSTGRES and
// MCPGUARD_TEST_REDIS. In CI (CI=true) a missing server fails the test;
// elsewhere the test is skipped with a loud message saying how to run it.
package servicetest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// Environment variables naming the test servers.
const (
	PostgresEnv = "MCPGUARD_TEST_POSTGRES"
	RedisEnv    = "MCPGUARD_TEST_REDIS"
)

func need(t testing.TB, env, what string) string {
	t.Helper()
	v := os.Getenv(env)
	if v != "" {
		return v
	}
	msg := "*** " + what + " NOT AVAILABLE: set " + env + " (`source .ci/services` starts one on loopback) ***"
	if os.Getenv("CI") == "true" {
		t.Fatal(msg + " — required in CI")
	}
	t.Skip(msg + " — skipping")
	return ""
}

// PostgresURL returns the test server's URL.
func PostgresURL(t testing.TB) string { return need(t, PostgresEnv, "PostgreSQL") }

// RedisURL returns the test Redis server's URL.
func RedisURL(t testing.TB) string { return need(t, RedisEnv, "Redis") }

// PostgresSchema creates an empty schema of its own for t, dropped at the
// end of the test, and returns a URL whose connections use it (search_path),
// so that tests sharing one server never see each other's rows.
func PostgresSchema(t testing.TB) string {
	t.Helper()
	base := PostgresURL(t)
	b := make([]byte, 6)
	rand.Read(b)
	schema := "t_" + hex.EncodeToString(b)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		t.Fatalf("connect to %s: %v", PostgresEnv, err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, `CREATE SCHEMA `+schema); err != nil {
		t.Fatalf("create schema: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if c, err := pgx.Connect(ctx, base); err == nil {
			c.Exec(ctx, `DROP SCHEMA `+schema+` CASCADE`)
			c.Close(ctx)
		}
	})
	u, err := url.Parse(base)
	if err != nil {
		t.Fatalf("%s: %v", PostgresEnv, err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}
