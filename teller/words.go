package teller

// Words finance understands: every outbox exception kind, reconciliation
// category, state and bank response code the finance page shows, in
// Vietnamese and English, with what to do next. The page shows these and
// never the codes alone; TestWordsCoverEveryCode parses the switch's and
// recon's sources so that a new state or category without words fails.

import (
	"net/http"

	atmswitch "github.com/softatm/softatm/switch"
)

// Words is one code in words: what it means and what to do next.
type Words struct {
	Vi     string `json:"vi"`
	En     string `json:"en"`
	NextVi string `json:"next_vi"`
	NextEn string `json:"next_en"`
}

// Vocabulary is every dictionary the finance page uses, by code.
type Vocabulary struct {
	Exceptions    map[string]Words `json:"exceptions"`     // outbox exception kinds
	Recon         map[string]Words `json:"recon"`          // reconciliation categories
	States        map[string]Words `json:"states"`         // withdrawal states, and the page's own (day open/closed, resolved)
	ResponseCodes map[string]Words `json:"response_codes"` // the bank's ISO 8583 response codes (field 39), and no_answer
}

// vocabulary is the one copy of the words.
var vocabulary = Vocabulary{
	Exceptions: map[string]Words{
		"advice": {"Ngân hàng chưa xác nhận chi tiền", "The bank has not confirmed the payout",
			"Tiền mặt đã chi. Gửi lại; nếu vẫn lỗi, xử lý với mã tham chiếu của ngân hàng.",
			"The cash was paid. Retry; if it fails again, resolve it with the bank's reference."},
		"reversal": {"Ngân hàng chưa hoàn lại khoản giữ tiền", "The bank has not released the citizen's hold",
			"Không có tiền mặt nào được chi. Gửi lại; nếu vẫn lỗi, gọi ngân hàng hủy khoản giữ và ghi mã tham chiếu.",
			"No cash was paid. Retry; if it fails again, call the bank to release the hold and note its reference."},
		"reply_mismatch": {"Trả lời của ngân hàng không khớp yêu cầu", "The bank's reply did not match the request",
			"Không chi tiền cho giao dịch này; lệnh hủy đã được gửi. Gọi ngân hàng kiểm tra không còn khoản giữ.",
			"Nothing was paid and a reversal was sent. Call the bank to check that no hold remains."},
	},
	Recon: map[string]Words{
		"matched": {"Khớp", "Matched", "Không cần làm gì.", "Nothing to do."},
		"missing_at_bank": {"Ngân hàng thiếu giao dịch", "Missing in the bank's file",
			"Quầy đã chi tiền. Gửi ngân hàng RRN và biên nhận để ghi nợ; xem mục lỗi gửi ngân hàng.",
			"The counter paid it. Send the bank the RRN and receipt to book it; check the outbox exceptions."},
		"missing_at_switch": {"Hệ thống không chi giao dịch này", "Not paid by the switch",
			"Không có tiền mặt nào được chi. Yêu cầu ngân hàng hoàn tiền cho khách hàng.",
			"No cash was paid for it. Ask the bank to reverse it for the citizen."},
		"amount_differs": {"Lệch số tiền", "Amounts differ",
			"Đối chiếu biên nhận tại quầy; khiếu nại ngân hàng phần chênh lệch.",
			"Check the counter's receipt; claim the difference with the bank."},
		"field_mismatch": {"Lệch thông tin (STAN, mã chuẩn chi)", "Details differ (STAN, approval code)",
			"Số tiền khớp. Xác nhận với ngân hàng rồi ghi lý do.",
			"The amounts agree. Confirm with the bank, then note why."},
		"duplicate": {"Trùng lặp", "Duplicate",
			"Ngân hàng ghi giao dịch hai lần. Yêu cầu ngân hàng bỏ dòng trùng.",
			"The bank lists it twice. Ask the bank to drop the duplicate."},
		"awaiting_bank_file": {"Chờ tệp của ngân hàng", "Awaiting the bank's file",
			"Tải lên tệp quyết toán của ngân hàng cho ngày này.",
			"Upload the bank's settlement file for this day."},
		"date_differs": {"Khác ngày nghiệp vụ (giờ chốt)", "Business day differs (cut-off)",
			"Giao dịch nằm trong tệp của ngày khác; đối soát với tệp ngày đó.",
			"It is in another day's file; reconcile it against that day."},
	},
	States: map[string]Words{
		"requested": {"Đang chờ ngân hàng", "Waiting for the bank", "Không cần làm gì.", "Nothing to do."},
		"reserved":  {"Đã giữ tiền, chờ chi", "Reserved, waiting to be paid", "Không cần làm gì.", "Nothing to do."},
		"claimed":   {"Đang chi tại quầy", "Being paid at a counter", "Không cần làm gì.", "Nothing to do."},
		"paid": {"Đã chi, chờ ngân hàng xác nhận", "Paid, waiting for the bank's confirmation",
			"Nếu kéo dài, xem mục lỗi gửi ngân hàng.", "If it lasts, check the outbox exceptions."},
		"completed": {"Hoàn tất", "Completed", "Không cần làm gì.", "Nothing to do."},
		"cancelled": {"Khách đã hủy", "Cancelled by the citizen", "Không cần làm gì: khoản giữ được hoàn lại.",
			"Nothing to do: the hold is released."},
		"expired": {"Mã hết hạn", "Code expired", "Không cần làm gì: khoản giữ được hoàn lại.",
			"Nothing to do: the hold is released."},
		"failed": {"Thất bại: ngân hàng không trả lời kịp", "Failed: no answer from the bank in time",
			"Không có tiền được chi; lệnh hủy đã được gửi.", "Nothing was paid; a reversal was sent."},
		"declined": {"Ngân hàng từ chối", "Declined by the bank", "Không cần làm gì.", "Nothing to do."},
		"open": {"Đang mở", "Open", "Khóa sổ khi mọi ngân hàng đã qua giờ chốt và đã đối soát.",
			"Close it once every bank's cut-off has passed and it is reconciled."},
		"closed":     {"Đã khóa sổ", "Closed", "Không thể thay đổi.", "It can no longer change."},
		"resolved":   {"Đã xử lý", "Resolved", "Không cần làm gì.", "Nothing to do."},
		"unresolved": {"Chưa xử lý", "Not resolved", "Xử lý và ghi lý do.", "Deal with it and write down why."},
	},
	ResponseCodes: map[string]Words{
		"05": {"Ngân hàng từ chối (05)", "The bank refused (05)", "Gọi ngân hàng hỏi lý do.", "Call the bank and ask why."},
		"12": {"Giao dịch không hợp lệ (12)", "Invalid transaction (12)", "Gọi ngân hàng kiểm tra giao dịch.", "Call the bank to check the transaction."},
		"13": {"Số tiền không hợp lệ (13)", "Invalid amount (13)", "Gọi ngân hàng kiểm tra số tiền.", "Call the bank to check the amount."},
		"14": {"Tài khoản không hợp lệ (14)", "Invalid account (14)", "Gọi ngân hàng kiểm tra tài khoản.", "Call the bank to check the account."},
		"30": {"Lỗi định dạng tin nhắn (30)", "Message format error (30)", "Báo bộ phận kỹ thuật.", "Tell the technical team."},
		"51": {"Không đủ số dư (51)", "Insufficient funds (51)", "Gọi ngân hàng.", "Call the bank."},
		"61": {"Vượt hạn mức (61)", "Exceeds the limit (61)", "Gọi ngân hàng.", "Call the bank."},
		"91": {"Ngân hàng tạm thời không phản hồi (91)", "The bank is unavailable (91)",
			"Gửi lại khi ngân hàng hoạt động trở lại.", "Retry when the bank is back."},
		"94": {"Ngân hàng báo trùng (94)", "The bank already has it (94)", "Không cần làm gì.", "Nothing to do."},
		"96": {"Lỗi hệ thống ngân hàng (96)", "The bank's system failed (96)",
			"Gửi lại sau; nếu vẫn lỗi, gọi ngân hàng.", "Retry later; if it fails again, call the bank."},
		"no_answer": {"Ngân hàng không trả lời", "No answer from the bank",
			"Kiểm tra kết nối ngân hàng, rồi gửi lại.", "Check the bank link, then retry."},
	},
}

// WordsHandler handles GET /v1/finance/words: the vocabulary.
func (f *Finance) WordsHandler(w http.ResponseWriter, r *http.Request) {
	atmswitch.WriteJSON(w, http.StatusOK, vocabulary)
}
