package sqs

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
)

// QueueID names a queue the way its ARN does. Region and Account are ""
// when a queue URL does not tell them (an emulator's URL, a custom domain).
type QueueID struct {
	Partition string
	Region    string
	Account   string
	Name      string
}

// ParseQueueURL reads a queue URL: https://sqs.REGION.amazonaws.com/ACCOUNT/NAME
// (also the .amazonaws.com.cn, legacy REGION.queue.amazonaws.com and VPC
// endpoint forms). Any other host still gives the name, and the account when
// the path holds a 12-digit one.
func ParseQueueURL(queueURL string) (QueueID, error) {
	u, err := url.Parse(queueURL)
	if err != nil || u.Host == "" {
		return QueueID{}, fmt.Errorf("queue URL %q is not a URL", queueURL)
	}
	segs := strings.Split(strings.Trim(u.Path, "/"), "/")
	id := QueueID{Name: segs[len(segs)-1]}
	if id.Name == "" {
		return QueueID{}, fmt.Errorf("queue URL %q has no queue name", queueURL)
	}
	if len(segs) >= 2 && isAccount(segs[len(segs)-2]) {
		id.Account = segs[len(segs)-2]
	}
	host := strings.ToLower(u.Hostname())
	parts := strings.Split(host, ".")
	switch {
	case strings.HasSuffix(host, ".amazonaws.com.cn"):
		id.Partition = "aws-cn"
	case strings.HasSuffix(host, ".amazonaws.com"):
		id.Partition = "aws"
	default:
		return id, nil
	}
	for i, p := range parts {
		switch {
		case p == "sqs" && i+1 < len(parts) && parts[i+1] != "amazonaws":
			id.Region = parts[i+1]
		case p == "queue" && i > 0 && id.Region == "":
			id.Region = parts[i-1]
		}
	}
	if host == "queue.amazonaws.com" {
		id.Region = "us-east-1"
	}
	if strings.HasPrefix(id.Region, "us-gov-") {
		id.Partition = "aws-us-gov"
	}
	return id, nil
}

// ParseQueueARN reads arn:PARTITION:sqs:REGION:ACCOUNT:NAME.
func ParseQueueARN(arn string) (QueueID, error) {
	p := strings.Split(arn, ":")
	if len(p) != 6 || p[0] != "arn" || p[2] != "sqs" || p[5] == "" {
		return QueueID{}, errors.New("not an SQS queue ARN: " + arn)
	}
	return QueueID{Partition: p[1], Region: p[3], Account: p[4], Name: p[5]}, nil
}

// ARN is the queue's ARN, with "*" for the parts the URL did not tell.
func (q QueueID) ARN() string {
	return "arn:" + or(q.Partition, "aws") + ":sqs:" + or(q.Region, "*") + ":" + or(q.Account, "*") + ":" + q.Name
}

// Complete reports whether the ARN needs no wildcard.
func (q QueueID) Complete() bool { return q.Region != "" && q.Account != "" }

// QueueName is the last path segment of a queue URL, "" if it has none.
func QueueName(queueURL string) string {
	if id, err := ParseQueueURL(queueURL); err == nil {
		return id.Name
	}
	return ""
}

func isAccount(s string) bool {
	if len(s) != 12 {
		return false
	}
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}

func or(s, dflt string) string {
	if s == "" {
		return dflt
	}
	return s
}
