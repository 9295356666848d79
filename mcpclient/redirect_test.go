package mcpclient

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestLoopbackAcceptsOnlyItsRedirect(t *testing.T) {
	lb, err := listenLoopback(0)
	if err != nil {
		t.Fatal(err)
	}
	defer lb.close()
	if !strings.HasPrefix(lb.url, "http://127.0.0.1:") || !strings.HasSuffix(lb.url, "/callback") {
		t.Fatalf("redirect URL %q", lb.url)
	}
	get := func(query string) int {
		resp, err := http.Get(lb.url + "?" + query)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := get("code=x&state=early"); code != 400 {
		t.Errorf("a redirect before the authorization started: %d", code)
	}
	lb.expect("s1")
	if code := get("code=forged&state=other"); code != 400 {
		t.Errorf("a redirect with another state: %d", code)
	}
	if code := get("code=c1&state=s1&iss=https%3A%2F%2Fas.example"); code != 200 {
		t.Errorf("the right redirect: %d", code)
	}
	if code := get("code=c2&state=s1"); code != 400 {
		t.Errorf("a second use of the state: %d", code)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	res, err := lb.wait(ctx)
	if err != nil || res.Code != "c1" || res.State != "s1" || res.Iss != "https://as.example" {
		t.Fatalf("wait = %+v, %v", res, err)
	}

	t.Run("error redirect", func(t *testing.T) {
		lb, _ := listenLoopback(0)
		defer lb.close()
		lb.expect("s2")
		resp, err := http.Get(lb.url + "?error=access_denied&error_description=the+user+said+no%0A&state=s2")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		_, err = lb.wait(context.Background())
		if err == nil || !strings.Contains(err.Error(), "access_denied (the user said no?)") {
			t.Errorf("err = %v", err)
		}
	})
}
