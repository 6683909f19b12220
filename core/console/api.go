package console

import (
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strconv"

	"github.com/mimi-gateway/mimi-gateway/core/bus"
	"github.com/mimi-gateway/mimi-gateway/core/event"
	"github.com/mimi-gateway/mimi-gateway/core/protocol"
)

// APIActor names the admin CLI in the audit log.
const APIActor = "cli:socket"

// API paths of the JSON API (APIHandler) that `mimi-gateway admin` uses.
const (
	APIDeadLetters   = "/api/v1/deadletters"    // GET ?after=&limit=; GET /{seq}; POST /{seq}/replay, /{seq}/discard
	APIPartnersCheck = "/api/v1/partners/check" // POST ?domain= (all partners when empty)
	APIRooms         = "/api/v1/rooms"          // GET
	APISections      = "/api/v1/sections"       // GET /{path}?lang= : a Section's Table
)

// APIError is the JSON body of a failed API call.
type APIError struct {
	Error string `json:"error"`
}

func (c *Console) apiRoutes() *http.ServeMux {
	m := http.NewServeMux()
	b := c.cfg.Backend
	if b.DeadLetters != nil {
		m.HandleFunc("GET "+APIDeadLetters, func(w http.ResponseWriter, r *http.Request) {
			after, _ := strconv.ParseUint(r.URL.Query().Get("after"), 10, 64)
			limit, _ := strconv.Atoi(r.URL.Query().Get("limit"))
			items, err := b.DeadLetters.ListDeadLetters(r.Context(), after, limit)
			if items == nil {
				items = []bus.DeadLetter{}
			}
			writeAPI(w, items, err)
		})
		m.HandleFunc("GET "+APIDeadLetters+"/{seq}", func(w http.ResponseWriter, r *http.Request) {
			seq, err := strconv.ParseUint(r.PathValue("seq"), 10, 64)
			if err != nil {
				writeAPI(w, nil, bus.ErrDeadLetterNotFound)
				return
			}
			d, err := b.DeadLetters.GetDeadLetter(r.Context(), seq)
			writeAPI(w, d, err)
		})
		for _, action := range []string{"replay", "discard"} {
			m.HandleFunc("POST "+APIDeadLetters+"/{seq}/"+action, func(w http.ResponseWriter, r *http.Request) {
				seq, err := strconv.ParseUint(r.PathValue("seq"), 10, 64)
				if err != nil {
					writeAPI(w, nil, bus.ErrDeadLetterNotFound)
					return
				}
				if action == "replay" {
					err = c.replay(r.Context(), seq)
				} else {
					err = c.discard(r.Context(), seq)
				}
				outcome := "ok"
				if err != nil {
					outcome = clip(err.Error(), 256)
				}
				c.audit(r.Context(), APIActor, "dlq."+action, strconv.FormatUint(seq, 10), outcome, "", "")
				writeAPI(w, map[string]any{"seq": seq, action: err == nil}, err)
			})
		}
	}
	if b.Partners != nil {
		m.HandleFunc("POST "+APIPartnersCheck, func(w http.ResponseWriter, r *http.Request) {
			var out []protocol.CheckResult
			if d := r.URL.Query().Get("domain"); d != "" {
				out = append(out, c.checkPartner(r.Context(), event.Domain(d), APIActor))
			} else {
				for _, p := range b.Partners.Partners(r.Context()) {
					out = append(out, c.checkPartner(r.Context(), p.Domain, APIActor))
				}
			}
			if out == nil {
				out = []protocol.CheckResult{}
			}
			writeAPI(w, out, nil)
		})
	}
	m.HandleFunc("GET "+APISections+"/{path}", func(w http.ResponseWriter, r *http.Request) {
		i := slices.IndexFunc(b.Sections, func(s Section) bool { return s.Path == r.PathValue("path") })
		if i < 0 {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusNotFound)
			_ = json.NewEncoder(w).Encode(APIError{Error: "no such section"})
			return
		}
		lang := r.URL.Query().Get("lang")
		if lang != "de" {
			lang = "en"
		}
		t, err := b.Sections[i].Load(r.Context(), lang)
		writeAPI(w, t, err)
	})
	if b.Rooms != nil {
		m.HandleFunc("GET "+APIRooms, func(w http.ResponseWriter, r *http.Request) {
			rooms, err := b.Rooms.Rooms(r.Context())
			if err != nil {
				writeAPI(w, nil, err)
				return
			}
			backlog, err := b.Rooms.Backlog(r.Context())
			writeAPI(w, map[string]any{"rooms": rooms, "backlog": backlog}, err)
		})
	}
	return m
}

func writeAPI(w http.ResponseWriter, v any, err error) {
	w.Header().Set("Content-Type", "application/json")
	if err != nil {
		status := http.StatusInternalServerError
		if errors.Is(err, bus.ErrDeadLetterNotFound) {
			status = http.StatusNotFound
		}
		w.WriteHeader(status)
		_ = json.NewEncoder(w).Encode(APIError{Error: err.Error()})
		return
	}
	_ = json.NewEncoder(w).Encode(v)
}
