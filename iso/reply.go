package iso

import (
	"errors"
	"fmt"
	"reflect"
	"sort"
	"strconv"
	"strings"
)

// ErrReplyMismatch: a reply came with the right MTI, STAN and terminal but
// does not carry the request's other identifying fields (amount, RRN,
// account, currency, processing code...). It is not an answer to the
// request: the outcome at the bank is unknown, exactly as for ErrTimeout, so
// a 0100 must be reversed. Every error the Client returns for such a reply
// is a *MismatchError, and errors.Is(err, ErrReplyMismatch) is true.
var ErrReplyMismatch = errors.New("iso: reply does not match its request")

// replyEchoFields are the fields a reply must carry exactly as its request
// did: present with the same value when the request sent them, absent when
// it did not. Field 0 (the MTI) must be the request's response MTI.
//
// The 1987 standard lets a response omit some of these (37, 49 and the
// account fields are "conditional echo" there). Our profile decides: no
// omission is allowed. Every request we send carries 3, 4, 11, 37, 41, 49
// and 102 (the 0800 carries 11 and 70), and a reply that drops one of them
// cannot be told from a reply about another transaction, so it counts as a
// mismatch. A bank that cannot parse our request (39=30) and answers
// without echoing is therefore treated as "no answer" (reverse), which is
// the safe reading. Field 41 is compared too although the reply is only
// routed to a request whose terminal it names: CheckReply is the one check
// and does not rely on how the reply was found.
//
// A reply that carries a field of this list the request did not send (an
// account in field 2 when we sent 102, an amount on an 0810) is a mismatch
// as well: it names something we did not ask about.
var replyEchoFields = []int{2, 3, 4, 11, 37, 41, 49, 70, 102}

// MismatchError reports a reply that does not match its request. Request
// and Reply render both messages for an exception record, with account
// numbers (fields 2 and 102) masked to their last four characters; Error
// shows the differing values, masked the same way. Nothing in it holds a
// full account number.
type MismatchError struct {
	MTI     string   // the reply's MTI, e.g. "0110"
	Fields  []string // the differing field numbers, ascending, e.g. ["4", "37"]
	Request string   // the request, rendered by Message.String (masked)
	Reply   string   // the reply, rendered by Message.String (masked)

	diffs []string // "4 sent \"...\" got \"...\"", masked
}

func (e *MismatchError) Error() string {
	return fmt.Sprintf("iso: %s does not match its request: %s", e.MTI, strings.Join(e.diffs, "; "))
}

// Unwrap makes errors.Is(err, ErrReplyMismatch) true.
func (e *MismatchError) Unwrap() error { return ErrReplyMismatch }

// CheckReply compares reply with the request it answers field by field (see
// replyEchoFields) and returns a *MismatchError naming every field that
// differs, or nil when reply matches. It is the only place replies are
// judged against requests; the Client runs it on every reply it receives
// (0110, 0230, 0430, 0810) before anything else reads the reply.
func CheckReply(req, reply *Message) error {
	var fields, diffs []string
	if want := ResponseMTI(req.MTI); want == "" || reply.MTI != want {
		fields = append(fields, "0")
		diffs = append(diffs, fmt.Sprintf("MTI %s to a %s", reply.MTI, req.MTI))
	}
	for _, id := range replyEchoFields {
		sent, got := fieldValue(req, id), fieldValue(reply, id)
		if sent == got {
			continue
		}
		fields = append(fields, strconv.Itoa(id))
		diffs = append(diffs, fmt.Sprintf("%d sent %s got %s", id, shown(id, sent), shown(id, got)))
	}
	if len(fields) == 0 {
		return nil
	}
	return &MismatchError{MTI: reply.MTI, Fields: fields, Request: req.String(), Reply: reply.String(), diffs: diffs}
}

// String renders m for logs and exception records: the MTI, then every
// field that is set as number=quoted value in field order, with the account
// fields (2 and 102) masked to their last four characters. Being the
// Stringer of Message, it is also what %v prints, so a Message dropped into
// a log line never shows an account in clear.
func (m Message) String() string {
	var b strings.Builder
	b.WriteString(m.MTI)
	v := reflect.ValueOf(m)
	for _, f := range messageFields {
		if f.id == 0 {
			continue
		}
		s := v.Field(f.index).String()
		if s == "" {
			continue
		}
		fmt.Fprintf(&b, " %d=%s", f.id, shown(f.id, s))
	}
	return b.String()
}

// shown quotes a field value for a log or an error, masking account fields.
// An absent field shows as "absent".
func shown(id int, s string) string {
	if s == "" {
		return "absent"
	}
	if id == 2 || id == 102 {
		s = Mask(s)
	}
	return strconv.Quote(s)
}

type messageField struct{ id, index int }

// messageFields maps Message's iso8583 tags to struct field indexes, in
// field order, so rendering and comparison follow the type and never miss a
// field added to it later.
var messageFields, messageFieldIndex = func() ([]messageField, map[int]int) {
	t := reflect.TypeOf(Message{})
	var out []messageField
	index := map[int]int{}
	for i := 0; i < t.NumField(); i++ {
		tag := t.Field(i).Tag.Get("iso8583")
		id, err := strconv.Atoi(tag)
		if err != nil || t.Field(i).Type.Kind() != reflect.String {
			panic(fmt.Sprintf("iso: Message field %s: tag %q is not a field number of a string", t.Field(i).Name, tag))
		}
		out = append(out, messageField{id, i})
		index[id] = i
	}
	sort.Slice(out, func(a, b int) bool { return out[a].id < out[b].id })
	return out, index
}()

// fieldValue returns field id of m; it panics on a field Message does not
// carry, which is a programming error in replyEchoFields.
func fieldValue(m *Message, id int) string {
	i, ok := messageFieldIndex[id]
	if !ok {
		panic(fmt.Sprintf("iso: Message has no field %d", id))
	}
	return reflect.ValueOf(m).Elem().Field(i).String()
}
