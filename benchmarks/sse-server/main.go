// A small, fast OpenAI-compatible SSE server for the benchmarks (benchmarks/ceiling.mjs,
// benchmarks/overhead.mjs): it streams completions and chat completions in vLLM 0.32's shapes,
// one SSE event per token, each event flushed as its own HTTP chunk (one write), as fast as the
// client reads (-itl-ms 0) or one token every -itl-ms. It does no inference and no tokenising,
// so it is not the bottleneck for a client on another core: the load generator is.
//
//	sse-server -listen 127.0.0.1:0 [-ttft-ms 50] [-itl-ms 0] [-precise] [-idle-ms 5000] [-model bench-model] [-reuseport]
//
// -reuseport: listen with SO_REUSEPORT, so several processes can serve one port (the kernel
// spreads connections over them): benchmarks/lib.mjs starts one per core it gives the server,
// so the server is never the bottleneck of a client measurement (issue 28).
//
// Prints "LISTENING http://HOST:PORT", then every 200 ms "STATS <ms since start> <token events
// sent> <requests finished> <streams open>" so the benchmark can count what every client got
// in the same way, without asking the client.
//
// -precise: the first token and every later token are sent at their exact deadline (sleep to
// 1 ms before it, then spin), so server timer jitter does not enter a paired latency difference.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"runtime"
	"strconv"
	"sync/atomic"
	"syscall"
	"time"
)

var (
	model    = flag.String("model", "bench-model", "model id served")
	ttftMs   = flag.Float64("ttft-ms", 0, "first token this many ms after the response headers")
	itlMs    = flag.Float64("itl-ms", 0, "ms between tokens (0: as fast as the client reads)")
	precise  = flag.Bool("precise", false, "hit every deadline exactly (sleep, then spin)")
	listen   = flag.String("listen", "127.0.0.1:0", "address")
	idleMs   = flag.Int("idle-ms", 5000, "close a keep-alive connection idle this long (uvicorn: 5000)")
	reuse    = flag.Bool("reuseport", false, "listen with SO_REUSEPORT (several processes on one port)")
	events   atomic.Int64
	finished atomic.Int64
	open     atomic.Int64
	start    = time.Now()
	words    = []string{" the", " ocean", " is", " wide", " and", " deep", " blue", " calm"}
)

func wait(until time.Time) {
	d := time.Until(until)
	if d <= 0 {
		return
	}
	if !*precise {
		time.Sleep(d)
		return
	}
	if d > time.Millisecond {
		time.Sleep(d - time.Millisecond)
	}
	for time.Now().Before(until) {
		runtime.Gosched()
	}
}

type request struct {
	Model         string          `json:"model"`
	MaxTokens     *int            `json:"max_tokens"`
	MaxCompletion *int            `json:"max_completion_tokens"`
	Stream        bool            `json:"stream"`
	StreamOptions json.RawMessage `json:"stream_options"`
	Prompt        json.RawMessage `json:"prompt"`
	Messages      json.RawMessage `json:"messages"`
}

func completions(chat bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var req request
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			http.Error(w, `{"error":{"message":"bad json","type":"BadRequestError","code":400}}`, 400)
			return
		}
		n := 16
		if req.MaxTokens != nil {
			n = *req.MaxTokens
		} else if req.MaxCompletion != nil {
			n = *req.MaxCompletion
		}
		if n < 1 {
			n = 1
		}
		promptTokens := 8
		id := "cmpl-bench"
		object := "text_completion"
		if chat {
			id, object = "chatcmpl-bench", "chat.completion.chunk"
		}
		if !req.Stream {
			text := ""
			for i := 0; i < n; i++ {
				text += words[i%len(words)]
			}
			w.Header().Set("content-type", "application/json")
			var choice string
			if chat {
				choice = fmt.Sprintf(`{"index":0,"message":{"role":"assistant","content":%q},"finish_reason":"length"}`, text)
			} else {
				choice = fmt.Sprintf(`{"index":0,"text":%q,"logprobs":null,"finish_reason":"length"}`, text)
			}
			fmt.Fprintf(w, `{"id":"%s","object":"%s","created":0,"model":"%s","choices":[%s],"usage":{"prompt_tokens":%d,"total_tokens":%d,"completion_tokens":%d}}`,
				id, map[bool]string{true: "chat.completion", false: "text_completion"}[chat], *model, choice, promptTokens, promptTokens+n, n)
			events.Add(int64(n))
			finished.Add(1)
			return
		}
		flusher := w.(http.Flusher)
		h := w.Header()
		h.Set("content-type", "text/event-stream; charset=utf-8")
		h.Set("cache-control", "no-cache")
		w.WriteHeader(200)
		flusher.Flush()
		open.Add(1)
		defer open.Add(-1)
		headersAt := time.Now()
		ctx := r.Context()
		prefix := fmt.Sprintf(`data: {"id":"%s","object":"%s","created":0,"model":"%s","choices":[`, id, object, *model)
		if chat {
			if _, err := fmt.Fprintf(w, "%s{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},\"logprobs\":null,\"finish_reason\":null}]}\n\n", prefix); err != nil {
				return
			}
		}
		next := headersAt.Add(time.Duration(*ttftMs * float64(time.Millisecond)))
		itl := time.Duration(*itlMs * float64(time.Millisecond))
		buf := make([]byte, 0, 512)
		for i := 0; i < n; i++ {
			if i == 0 || itl > 0 {
				wait(next)
				next = next.Add(itl)
			}
			if ctx.Err() != nil {
				return
			}
			finish := "null"
			if i == n-1 {
				finish = `"length"`
			}
			buf = append(buf[:0], prefix...)
			if chat {
				buf = append(buf, `{"index":0,"delta":{"content":"`...)
				buf = append(buf, words[i%len(words)]...)
				buf = append(buf, `"},"logprobs":null,"finish_reason":`...)
			} else {
				buf = append(buf, `{"index":0,"text":"`...)
				buf = append(buf, words[i%len(words)]...)
				buf = append(buf, `","logprobs":null,"finish_reason":`...)
			}
			buf = append(buf, finish...)
			buf = append(buf, `,"stop_reason":null}]}`+"\n\n"...)
			if _, err := w.Write(buf); err != nil {
				return
			}
			flusher.Flush()
			events.Add(1)
		}
		if len(req.StreamOptions) > 0 {
			fmt.Fprintf(w, "data: {\"id\":\"%s\",\"object\":\"%s\",\"created\":0,\"model\":\"%s\",\"choices\":[],\"usage\":{\"prompt_tokens\":%d,\"total_tokens\":%d,\"completion_tokens\":%d}}\n\n",
				id, object, *model, promptTokens, promptTokens+n, n)
		}
		w.Write([]byte("data: [DONE]\n\n"))
		finished.Add(1)
	}
}

func main() {
	flag.Parse()
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/completions", completions(false))
	mux.HandleFunc("POST /v1/chat/completions", completions(true))
	mux.HandleFunc("GET /v1/models", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("content-type", "application/json")
		fmt.Fprintf(w, `{"object":"list","data":[{"id":"%s","object":"model","created":0,"owned_by":"vllm","root":"%s","parent":null,"max_model_len":4096}]}`, *model, *model)
	})
	mux.HandleFunc("GET /health", func(w http.ResponseWriter, r *http.Request) {})
	mux.HandleFunc("GET /version", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("content-type", "application/json")
		w.Write([]byte(`{"version":"0.32.0"}`))
	})
	lc := net.ListenConfig{}
	if *reuse {
		lc.Control = func(network, address string, c syscall.RawConn) error {
			var serr error
			if err := c.Control(func(fd uintptr) { serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, soReusePort, 1) }); err != nil {
				return err
			}
			return serr
		}
	}
	ln, err := lc.Listen(context.Background(), "tcp", *listen)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Printf("LISTENING http://%s\n", ln.Addr().String())
	go func() {
		for range time.Tick(200 * time.Millisecond) {
			fmt.Println("STATS " + strconv.FormatInt(time.Since(start).Milliseconds(), 10) + " " + strconv.FormatInt(events.Load(), 10) + " " + strconv.FormatInt(finished.Load(), 10) + " " + strconv.FormatInt(open.Load(), 10))
		}
	}()
	srv := &http.Server{Handler: mux, IdleTimeout: time.Duration(*idleMs) * time.Millisecond}
	if err := srv.Serve(ln); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

// SO_REUSEPORT on Linux (the syscall package does not name it; golang.org/x/sys/unix does, and
// this server uses the standard library only).
const soReusePort = 0xf
