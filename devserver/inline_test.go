package devserver

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// TestSmallObjectsInline checks that an object of at most inlineMax bytes is
// kept in the index with no file, a larger one in a file, and that both read
// back, copy (each way) and delete alike, across a restart too.
func TestSmallObjectsInline(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	bodies := map[string]string{
		"small": "kept in the index",
		"edge":  strings.Repeat("e", inlineMax),
		"large": strings.Repeat("l", inlineMax+1),
	}
	files := func() int {
		t.Helper()
		entries, err := os.ReadDir(filepath.Join(dir, blobDir))
		if err != nil {
			t.Fatal(err)
		}
		return len(entries)
	}
	s := startServer(t, Options{DataDir: dir})
	c := s3Client(t, localTarget(s))
	for key, body := range bodies {
		if _, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(s.Bucket()), Key: aws.String(key), Body: strings.NewReader(body)}); err != nil {
			t.Fatal(err)
		}
	}
	if n := files(); n != 1 {
		t.Fatalf("%d object files after putting one large and two small objects, want 1", n)
	}
	for _, src := range []string{"small", "large"} {
		if _, err := c.CopyObject(ctx, &s3.CopyObjectInput{Bucket: aws.String(s.Bucket()), Key: aws.String(src + "-copy"),
			CopySource: aws.String(s.Bucket() + "/" + src)}); err != nil {
			t.Fatal(err)
		}
		bodies[src+"-copy"] = bodies[src]
	}
	if n := files(); n != 2 {
		t.Fatalf("%d object files after copying both, want 2", n)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = startServer(t, Options{DataDir: dir})
	c = s3Client(t, localTarget(s))
	for key, want := range bodies {
		out, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(s.Bucket()), Key: aws.String(key)})
		if err != nil {
			t.Fatalf("get %s: %v", key, err)
		}
		got, _ := io.ReadAll(out.Body)
		out.Body.Close()
		if string(got) != want || aws.ToInt64(out.ContentLength) != int64(len(want)) {
			t.Errorf("%s read back %d bytes (length %d), want %d", key, len(got), aws.ToInt64(out.ContentLength), len(want))
		}
	}
	list, err := c.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String(s.Bucket())})
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range list.Contents {
		if want := int64(len(bodies[aws.ToString(o.Key)])); aws.ToInt64(o.Size) != want {
			t.Errorf("listed %s with size %d, want %d", aws.ToString(o.Key), aws.ToInt64(o.Size), want)
		}
	}
	for key := range bodies {
		if _, err := c.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(s.Bucket()), Key: aws.String(key)}); err != nil {
			t.Fatal(err)
		}
	}
	if n := files(); n != 0 {
		t.Errorf("%d object files left after deleting every object", n)
	}
}
