package ui_test

import (
	"bytes"
	"compress/gzip"
	"io"
	"net/http"
	"os"
	"testing"

	"github.com/rumor-sd/rumor/ui"
)

// TestAssets: the stylesheet and the script are served as the files in ui/assets,
// with their type, gzipped when asked, cacheable and revalidated by ETag; any other
// path under /ui/assets/ is not found.
func TestAssets(t *testing.T) {
	f := newFixture(t, 1, ui.Config{})
	get := func(path string, hdr ...string) (*http.Response, []byte) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, f.srv.URL+path, nil)
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		resp, err := http.DefaultTransport.RoundTrip(req) // no transparent gunzip
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return resp, body
	}
	for _, c := range []struct{ path, file, ctype string }{
		{"/ui/assets/ui.css", "assets/ui.css", "text/css; charset=utf-8"},
		{"/ui/assets/ui.js", "assets/ui.js", "text/javascript; charset=utf-8"},
	} {
		want, err := os.ReadFile(c.file)
		if err != nil {
			t.Fatal(err)
		}
		resp, body := get(c.path)
		if resp.StatusCode != http.StatusOK || !bytes.Equal(body, want) || resp.Header.Get("Content-Type") != c.ctype {
			t.Errorf("%s: %d %q, %d bytes; want 200 %q and the file's %d bytes", c.path, resp.StatusCode,
				resp.Header.Get("Content-Type"), len(body), c.ctype, len(want))
		}
		if cc := resp.Header.Get("Cache-Control"); cc != "public, max-age=86400" {
			t.Errorf("%s: Cache-Control %q", c.path, cc)
		}
		resp, body = get(c.path, "Accept-Encoding", "gzip")
		if resp.Header.Get("Content-Encoding") != "gzip" {
			t.Errorf("%s with Accept-Encoding: gzip: not gzipped", c.path)
		} else if zr, err := gzip.NewReader(bytes.NewReader(body)); err != nil {
			t.Errorf("%s: %v", c.path, err)
		} else if plain, err := io.ReadAll(zr); err != nil || !bytes.Equal(plain, want) {
			t.Errorf("%s: gzipped body does not decompress to the file (%v)", c.path, err)
		}
		etag := resp.Header.Get("ETag")
		if etag == "" {
			t.Fatalf("%s: no ETag", c.path)
		}
		if resp, body := get(c.path, "If-None-Match", etag); resp.StatusCode != http.StatusNotModified || len(body) != 0 {
			t.Errorf("%s with If-None-Match: %d, %d bytes; want 304 and none", c.path, resp.StatusCode, len(body))
		}
		if resp, _ := get(c.path, "If-None-Match", `"other"`); resp.StatusCode != http.StatusOK {
			t.Errorf("%s with another ETag: %d, want 200", c.path, resp.StatusCode)
		}
	}
	for _, path := range []string{"/ui/assets/", "/ui/assets/nope.js"} {
		if resp, _ := get(path); resp.StatusCode != http.StatusNotFound {
			t.Errorf("%s: %d, want 404", path, resp.StatusCode)
		}
	}
}
