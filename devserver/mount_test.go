package devserver

import (
	"io"
	"net/http"
	"strings"
	"testing"
)

func TestMountServesAPrefixBesideS3(t *testing.T) {
	s := startServer(t, Options{})
	s.Mount("/ui/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "mounted "+r.URL.Path)
	}))
	get := func(path string) (int, string) {
		t.Helper()
		c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		resp, err := c.Get(s.Endpoint() + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	if code, body := get("/ui/api/x"); code != 200 || body != "mounted /ui/api/x" {
		t.Fatalf("/ui/api/x: %d %q", code, body)
	}
	if code, _ := get("/ui"); code != http.StatusMovedPermanently {
		t.Fatalf("/ui: %d, want a redirect to /ui/", code)
	}
	// The bucket is still S3's, which wants a signature.
	if code, body := get("/" + s.Bucket() + "/"); code != http.StatusForbidden || !strings.Contains(body, "MissingAuthenticationToken") {
		t.Fatalf("bucket listing: %d %q", code, body)
	}
}
