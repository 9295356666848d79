package oauth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/mcpguard/mcpguard/internal/lrulist"
	"github.com/mcpguard/mcpguard/internal/safehttp"
	"github.com/mcpguard/mcpguard/store"
)

// Client ID Metadata Document bounds.
const (
	cimdTimeout   = 5 * time.Second
	maxCIMDBytes  = 16 << 10
	cimdCacheSize = 1000
	// cimdFailTTL is how long a failed fetch is remembered, so that
	// authorization requests cannot make the server fetch a URL over and
	// over.
	cimdFailTTL = 30 * time.Second
	cimdMinTTL  = time.Minute
	cimdMaxTTL  = 24 * time.Hour
	cimdDefTTL  = 5 * time.Minute
)

// cimdCache fetches, validates and remembers Client ID Metadata Documents
// (draft-ietf-oauth-client-id-metadata-document): a bounded LRU of
// validated clients and recent failures, with one fetch at a time per URL.
type cimdCache struct {
	client *http.Client
	now    func() time.Time
	size   int

	mu       sync.Mutex
	items    map[string]*lrulist.Node[cimdEntry]
	lru      lrulist.List[cimdEntry]
	inflight map[string]*cimdFetch
}

type cimdEntry struct {
	id    string
	c     *client
	err   error
	until time.Time
}

type cimdFetch struct {
	done chan struct{}
	c    *client
	err  error
}

func newCIMDCache(c *http.Client, size int, now func() time.Time) *cimdCache {
	return &cimdCache{client: c, now: now, size: size, items: map[string]*lrulist.Node[cimdEntry]{}, inflight: map[string]*cimdFetch{}}
}

// checkCIMDURL checks that id can name a metadata document: an https URL
// with a path, without credentials, fragment, or dot segments.
func checkCIMDURL(id string) error {
	u, err := url.Parse(id)
	if err != nil || u.Scheme != "https" || u.Host == "" || u.Opaque != "" || u.User != nil || strings.Contains(id, "#") {
		return errors.New("a URL client_id must be an https URL without credentials or fragment")
	}
	if u.Path == "" || u.Path == "/" {
		return errors.New("a URL client_id must have a path")
	}
	for _, seg := range strings.Split(u.Path, "/") {
		if seg == "." || seg == ".." {
			return errors.New("a URL client_id may not contain dot segments")
		}
	}
	return nil
}

// get returns the client a metadata document URL names, fetching the
// document when it is not cached.
func (c *cimdCache) get(ctx context.Context, id string) (*client, error) {
	if err := checkCIMDURL(id); err != nil {
		return nil, err
	}
	c.mu.Lock()
	if n, ok := c.items[id]; ok {
		if c.now().Before(n.Value.until) {
			c.lru.MoveToFront(n)
			cl, err := n.Value.c, n.Value.err
			c.mu.Unlock()
			return cl, err
		}
		c.lru.Remove(n)
		delete(c.items, id)
	}
	f, running := c.inflight[id]
	if !running {
		f = &cimdFetch{done: make(chan struct{})}
		c.inflight[id] = f
	}
	c.mu.Unlock()
	if !running {
		// The fetch outlives the request that started it (others may be
		// waiting for it), bounded by its own timeout.
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cimdTimeout)
		var ttl time.Duration
		f.c, ttl, f.err = c.fetch(fctx, id)
		cancel()
		if f.err != nil {
			ttl = cimdFailTTL
		}
		c.mu.Lock()
		delete(c.inflight, id)
		c.put(cimdEntry{id: id, c: f.c, err: f.err, until: c.now().Add(ttl)})
		c.mu.Unlock()
		close(f.done)
	}
	select {
	case <-f.done:
		return f.c, f.err
	case <-ctx.Done():
		return nil, errors.New("the client metadata document could not be fetched in time")
	}
}

// put adds an entry, evicting the least recently used; c.mu is held.
func (c *cimdCache) put(e cimdEntry) {
	for len(c.items) >= c.size {
		back := c.lru.Back()
		c.lru.Remove(back)
		delete(c.items, back.Value.id)
	}
	n := &lrulist.Node[cimdEntry]{Value: e}
	c.lru.PushFront(n)
	c.items[e.id] = n
}

// fetch retrieves and validates the document at id, and returns the client
// it describes and how long it may be cached. Its errors are safe to show.
func (c *cimdCache) fetch(ctx context.Context, id string) (*client, time.Duration, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, id, nil)
	if err != nil {
		return nil, 0, errors.New("the client metadata document URL is invalid")
	}
	req.Header.Set("Accept", "application/json")
	resp, err := c.client.Do(req)
	if err != nil {
		if errors.Is(err, safehttp.ErrForbiddenAddress) {
			return nil, 0, errors.New("the client metadata document URL points at a private, loopback or otherwise non-public address")
		}
		return nil, 0, errors.New("the client metadata document could not be fetched")
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, 0, fmt.Errorf("fetching the client metadata document gave HTTP %d (redirects are not followed)", resp.StatusCode)
	}
	if mt, _, err := mime.ParseMediaType(resp.Header.Get("Content-Type")); err != nil || (mt != "application/json" && !strings.HasSuffix(mt, "+json")) {
		return nil, 0, errors.New("the client metadata document is not served as application/json")
	}
	body, err := safehttp.ReadBody(resp, maxCIMDBytes)
	if err != nil {
		if errors.Is(err, safehttp.ErrBodyTooLarge) {
			return nil, 0, fmt.Errorf("the client metadata document is larger than %d KiB", maxCIMDBytes>>10)
		}
		return nil, 0, errors.New("the client metadata document could not be read")
	}
	cl, err := parseCIMD(id, body)
	if err != nil {
		return nil, 0, err
	}
	return cl, cacheTTL(resp.Header.Get("Cache-Control")), nil
}

// parseCIMD validates a metadata document fetched from id.
func parseCIMD(id string, body []byte) (*client, error) {
	var m struct {
		registration
		ClientSecretExpiresAt json.RawMessage `json:"client_secret_expires_at"`
	}
	if err := json.Unmarshal(body, &m); err != nil {
		return nil, errors.New("the client metadata document is not a valid JSON object of client metadata")
	}
	switch {
	case m.ClientID != id:
		return nil, errors.New("the client metadata document's client_id does not equal its URL")
	case strings.TrimSpace(m.ClientName) == "":
		return nil, errors.New("the client metadata document has no client_name")
	case len(m.RedirectURIs) == 0:
		return nil, errors.New("the client metadata document has no redirect_uris")
	case m.ClientSecret != "" || m.ClientSecretExpiresAt != nil:
		return nil, errors.New("a client metadata document may not carry a client secret")
	}
	// Scope checks need the server's scopes; a document's scope does not
	// bound its client, like a dynamic registration's.
	m.registration.Scope = ""
	if err := (&Server{}).validateMetadata(&m.registration, false); err != nil {
		return nil, fmt.Errorf("the client metadata document is invalid: %w", err)
	}
	if m.ClientName == "" {
		return nil, errors.New("the client metadata document's client_name has no visible characters")
	}
	return &client{OAuthClient: store.OAuthClient{
		ID: id, Name: m.ClientName, RedirectURIs: m.RedirectURIs, GrantTypes: m.GrantTypes, TokenEndpointAuthMethod: "none",
	}, metadataDocument: true}, nil
}

// cacheTTL reads max-age from Cache-Control, clamped to [1 minute, 24
// hours]; 5 minutes without one, and the minimum with no-store or
// no-cache.
func cacheTTL(cc string) time.Duration {
	ttl := cimdDefTTL
	for _, d := range strings.Split(cc, ",") {
		name, val, _ := strings.Cut(strings.TrimSpace(d), "=")
		switch strings.ToLower(name) {
		case "no-store", "no-cache":
			return cimdMinTTL
		case "max-age":
			if secs, err := strconv.ParseInt(strings.Trim(val, `"`), 10, 64); err == nil && secs >= 0 {
				ttl = min(max(time.Duration(min(secs, int64(cimdMaxTTL/time.Second)))*time.Second, cimdMinTTL), cimdMaxTTL)
			}
		}
	}
	return ttl
}
