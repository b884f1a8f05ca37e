package registration

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/mail"
	"strings"
)

// RegisterRequest is the body of POST /register.
type RegisterRequest struct {
	Name  string `json:"name"`
	Email string `json:"email"`
	VIP   bool   `json:"vip"`
}

// RegisterResponse is the body of a 201 answer.
type RegisterResponse struct {
	UserID  string `json:"user_id"`
	EventID string `json:"event_id"`
}

// Handler serves POST /register and GET /healthz. Registration touches
// only the local database, never the broker, so it stays fast when the
// broker or a provider is slow or down. /healthz says so too: 200 while
// the relay reaches the broker (or has been away less than
// RelayDownAfter), 503 "degraded" after that — registrations still go
// into the outbox, but nothing leaves it.
func Handler(store *Store, relay *RelayHealth) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /register", func(w http.ResponseWriter, r *http.Request) {
		req, ok := DecodeRegisterRequest(w, r)
		if !ok {
			return
		}
		e, err := store.Register(r.Context(), req.Name, req.Email, req.VIP)
		if errors.Is(err, ErrDuplicateEmail) {
			writeJSON(w, http.StatusConflict, map[string]string{"error": err.Error()})
			return
		}
		if err != nil {
			writeJSON(w, http.StatusInternalServerError, map[string]string{"error": "could not store the registration"})
			return
		}
		writeJSON(w, http.StatusCreated, RegisterResponse{UserID: e.UserID, EventID: e.EventID})
	})
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		st, err := store.Stats(r.Context())
		if err != nil {
			writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "database unavailable"})
			return
		}
		rs, down := relay.Status()
		status, code := "ok", http.StatusOK
		if down {
			status, code = "degraded", http.StatusServiceUnavailable
		}
		writeJSON(w, code, struct {
			Status string `json:"status"`
			OutboxStats
			Relay RelayStatus `json:"relay"`
		}{status, st, rs})
	})
	return mux
}

// DecodeRegisterRequest reads and checks the body of POST /register: JSON
// {"name","email","vip"} and nothing else, a name, and a plain e-mail
// address. When it is not, it answers 400 saying why and returns false.
func DecodeRegisterRequest(w http.ResponseWriter, r *http.Request) (RegisterRequest, bool) {
	var req RegisterRequest
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "body must be JSON {\"name\",\"email\",\"vip\"}: " + err.Error()})
		return req, false
	}
	req.Name = strings.TrimSpace(req.Name)
	if req.Name == "" {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "name is required"})
		return req, false
	}
	addr, err := mail.ParseAddress(req.Email)
	if err != nil || addr.Address != strings.TrimSpace(req.Email) {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "email must be a plain e-mail address like ada@example.com"})
		return req, false
	}
	req.Email = addr.Address
	return req, true
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}
