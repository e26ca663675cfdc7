package s3results

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// Cancel notices: beside a task's own cancel marker, PutCancel writes an
// empty object under one shared prefix, named so that a LIST returns the newest
// first and says when each was written and for which task:
//
//	PREFIX/cancels/INVERTED-MILLIS-ID   a cancel of task ID requested at that time
//
// so that a worker running many tasks learns of the cancels among them with
// one LIST per heartbeat instead of one HEAD per task. INVERTED-MILLIS is
// as in the history index (index.go).

// CancelNoticeDir is the prefix holding the cancel notices.
func (k Keys) CancelNoticeDir() string { return k.join("cancels") + "/" }

// CancelNotice is the key of the notice of a cancel of task id requested at t.
func (k Keys) CancelNotice(id string, t time.Time) string {
	return k.join("cancels", fmt.Sprintf("%013d-%s", indexEpochEnd-t.UnixMilli(), id))
}

// cancelNotice reads the time and the task id out of a notice key.
func (k Keys) cancelNotice(key string) (time.Time, string, bool) {
	inv, id, ok := strings.Cut(strings.TrimPrefix(key, k.CancelNoticeDir()), "-")
	if !ok || id == "" {
		return time.Time{}, "", false
	}
	n, err := strconv.ParseInt(inv, 10, 64)
	if err != nil {
		return time.Time{}, "", false
	}
	return time.UnixMilli(indexEpochEnd - n).UTC(), id, true
}

// putCancelNotice writes the notice of a cancel of task id requested at t
// (PutCancel writes it after the marker).
func (s *Store) putCancelNotice(ctx context.Context, id string, t time.Time) error {
	return s.put(ctx, s.keys.CancelNotice(id, t), nil, false)
}

// RecentCancels lists the ids of the tasks whose cancel was requested at
// or after since, newest first, reading at most maxKeys notices (one LIST
// page per thousand). complete is false when it stopped at maxKeys before
// reaching since: the caller must then look some other way.
func (s *Store) RecentCancels(ctx context.Context, since time.Time, maxKeys int) (ids map[string]bool, complete bool, err error) {
	dir := s.keys.CancelNoticeDir()
	ids = map[string]bool{}
	in := &s3.ListObjectsV2Input{Bucket: aws.String(s.bucket), Prefix: aws.String(dir), MaxKeys: aws.Int32(int32(min(maxKeys, 1000)))}
	p := s3.NewListObjectsV2Paginator(s.api, in)
	read := 0
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, false, s.wrap("list", dir, err)
		}
		for _, o := range page.Contents {
			at, id, ok := s.keys.cancelNotice(aws.ToString(o.Key))
			if !ok {
				continue
			}
			if at.Before(since) {
				return ids, true, nil
			}
			ids[id] = true
		}
		if read += len(page.Contents); read >= maxKeys {
			return ids, !p.HasMorePages(), nil
		}
	}
	return ids, true, nil
}
