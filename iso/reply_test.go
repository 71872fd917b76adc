package iso

import (
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"testing"
)

// setField sets field id of m by its iso8583 tag.
func setField(t *testing.T, m *Message, id int, v string) {
	t.Helper()
	i, ok := messageFieldIndex[id]
	if !ok {
		t.Fatalf("Message has no field %d", id)
	}
	reflect.ValueOf(m).Elem().Field(i).SetString(v)
}

// honestReply is what a bank that echoes every field answers to req.
func honestReply(req *Message) *Message {
	r := *req
	r.MTI, r.ResponseCode, r.SettlementDate = ResponseMTI(req.MTI), RCApproved, "0314"
	if req.MTI == MTIAuthRequest {
		r.ApprovalCode = "A1B2C3"
	}
	r.OriginalData = "" // a reply need not echo field 90
	return &r
}

// checkRequests builds one request of every kind the Client sends.
func checkRequests(t *testing.T) map[string]*Message {
	t.Helper()
	auth, err := testAuth().Message(DefaultAcquirerID)
	if err != nil {
		t.Fatal(err)
	}
	adv, err := testAdvice().Message(MTIAdvice, DefaultAcquirerID)
	if err != nil {
		t.Fatal(err)
	}
	rev, err := testAdvice().Message(MTIReversal, DefaultAcquirerID)
	if err != nil {
		t.Fatal(err)
	}
	pan := *auth // a request naming the account in field 2, as some peers do
	pan.PAN, pan.Account = pan.Account, ""
	return map[string]*Message{
		"0100": auth, "0100 with field 2": &pan, "0220": adv, "0420": rev,
		"0800": networkMessage(NetworkEcho, "000125", testTime, DefaultAcquirerID),
	}
}

// TestCheckReply: a reply that differs from its request in any one of the
// compared fields (another value, the field left out, or a field the
// request did not send) is a *MismatchError naming exactly that field; the
// honest reply passes.
func TestCheckReply(t *testing.T) {
	t.Parallel()
	for name, req := range checkRequests(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			if err := CheckReply(req, honestReply(req)); err != nil {
				t.Fatalf("honest reply refused: %v", err)
			}
			other := map[int]string{2: "9704001234560022", 3: "310000", 4: "000000010000", 11: "999999",
				37: "999999999999", 41: "KIOSK999", 49: "840", 70: "002", 102: "9704001234560022"}
			for _, id := range replyEchoFields {
				sent := fieldValue(req, id)
				var lies []string
				if sent != "" {
					lies = []string{other[id], ""} // another value, and the field left out
				} else {
					lies = []string{other[id]} // a field the request did not send
				}
				for _, v := range lies {
					reply := honestReply(req)
					setField(t, reply, id, v)
					err := CheckReply(req, reply)
					var me *MismatchError
					if !errors.As(err, &me) || !errors.Is(err, ErrReplyMismatch) {
						t.Fatalf("field %d sent %q got %q: err %v, want a MismatchError", id, sent, v, err)
					}
					if want := []string{strconv.Itoa(id)}; !reflect.DeepEqual(me.Fields, want) || me.MTI != reply.MTI {
						t.Fatalf("field %d: Fields %v MTI %s, want %v %s", id, me.Fields, me.MTI, want, reply.MTI)
					}
				}
			}
		})
	}
}

func TestCheckReplyManyFieldsAndMTI(t *testing.T) {
	t.Parallel()
	req := checkRequests(t)["0100"]
	reply := honestReply(req)
	reply.RRN, reply.Amount = "999999999999", "000000010000"
	var me *MismatchError
	if err := CheckReply(req, reply); !errors.As(err, &me) || fmt.Sprint(me.Fields) != "[4 37]" {
		t.Fatalf("got %v, want fields [4 37]", err)
	}
	if !strings.Contains(me.Error(), `4 sent "000001500000" got "000000010000"`) {
		t.Fatalf("error does not show the amounts: %v", me)
	}
	// A reply of another type (a 0230 to a 0100) is not its answer either,
	// and neither is anything to a message that expects no reply.
	wrong := honestReply(req)
	wrong.MTI = MTIAdviceResponse
	if err := CheckReply(req, wrong); !errors.As(err, &me) || fmt.Sprint(me.Fields) != "[0]" {
		t.Fatalf("0230 to a 0100: got %v, want fields [0]", err)
	}
	unknown := *req
	unknown.MTI = "0200"
	if err := CheckReply(&unknown, honestReply(req)); !errors.As(err, &me) || fmt.Sprint(me.Fields) != "[0]" {
		t.Fatalf("reply to a 0200: got %v, want fields [0]", err)
	}
}

// TestMismatchErrorMasksAccounts: the error text and both renderings show
// accounts only masked, also when the reply names someone else's account.
func TestMismatchErrorMasksAccounts(t *testing.T) {
	t.Parallel()
	for name, req := range checkRequests(t) {
		if req.AccountID() == "" {
			continue
		}
		mine, theirs := req.AccountID(), "9704009876540022"
		reply := honestReply(req)
		reply.Amount = "000000010000"
		if reply.Account != "" {
			reply.Account = theirs
		} else {
			reply.PAN = theirs
		}
		var me *MismatchError
		if err := CheckReply(req, reply); !errors.As(err, &me) {
			t.Fatalf("%s: got %v", name, err)
		}
		for what, s := range map[string]string{"Error": me.Error(), "Request": me.Request, "Reply": me.Reply} {
			if strings.Contains(s, mine) || strings.Contains(s, theirs) {
				t.Errorf("%s: %s shows a full account: %s", name, what, s)
			}
		}
		if !strings.Contains(me.Request, Mask(mine)) || !strings.Contains(me.Reply, Mask(theirs)) ||
			!strings.Contains(me.Error(), Mask(mine)) || !strings.Contains(me.Error(), Mask(theirs)) {
			t.Errorf("%s: masked accounts missing:\n%s\n%s\n%s", name, me.Error(), me.Request, me.Reply)
		}
		if !strings.HasPrefix(me.Request, req.MTI+" ") || !strings.Contains(me.Reply, ` 4="000000010000"`) {
			t.Errorf("%s: renderings %q / %q", name, me.Request, me.Reply)
		}
	}
	// %v of a message (in a log line, say) is the masked rendering too.
	req := checkRequests(t)["0100"]
	for _, s := range []string{fmt.Sprint(req), fmt.Sprintf("%+v", *req), fmt.Sprintf("%v", req)} {
		if strings.Contains(s, req.Account) || !strings.Contains(s, Mask(req.Account)) {
			t.Errorf("printed message shows the account: %s", s)
		}
	}
}
