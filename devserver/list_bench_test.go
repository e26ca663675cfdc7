package devserver

import (
	"context"
	"fmt"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	bolt "go.etcd.io/bbolt"
)

// BenchmarkListPrefix times one ListObjectsV2 of a task's prefix (five
// keys) in a bucket holding N other objects, through the SDK: the figure
// poll pays per LIST. Before the endpoint had its own index, this grew with
// the bucket (6 ms at 2,000 objects, 40-85 ms at 34,000).
func BenchmarkListPrefix(b *testing.B) {
	for _, n := range []int{2000, 34000} {
		b.Run(fmt.Sprintf("others=%d", n), func(b *testing.B) {
			s, err := New(Options{})
			if err != nil {
				b.Fatal(err)
			}
			if err := s.Start(); err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			if err := s.state.db.Update(func(tx *bolt.Tx) error {
				bk := tx.Bucket(objBucket(s.Bucket()))
				for i := range n {
					if err := bk.Put([]byte(fmt.Sprintf("taskiq/tasks/t%06d/result.json", i)), []byte(`{"size":1}`)); err != nil {
						return err
					}
				}
				for _, k := range []string{"task.json", "claims/0001", "attempts/0001.json", "result.json", "output"} {
					if err := bk.Put([]byte("taskiq/tasks/mine/"+k), []byte(`{"size":1}`)); err != nil {
						return err
					}
				}
				return nil
			}); err != nil {
				b.Fatal(err)
			}
			tg := &target{endpoint: s.Endpoint(), region: s.Region(), creds: s.Credentials(), bucket: s.Bucket(), local: s}
			c := s3.NewFromConfig(aws.Config{Region: tg.region, Credentials: aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) {
				return aws.Credentials{AccessKeyID: tg.creds.AccessKeyID, SecretAccessKey: tg.creds.SecretAccessKey}, nil
			})}, func(o *s3.Options) { o.BaseEndpoint = aws.String(tg.endpoint); o.UsePathStyle = true })
			ctx := context.Background()
			b.ResetTimer()
			for range b.N {
				out, err := c.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String(s.Bucket()), Prefix: aws.String("taskiq/tasks/mine/")})
				if err != nil || len(out.Contents) != 5 {
					b.Fatalf("%v %d", err, len(out.Contents))
				}
			}
		})
	}
}
