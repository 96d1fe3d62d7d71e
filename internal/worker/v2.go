package worker

import (
	"fmt"
	"net/http"
	"time"

	"github.com/openeas/openeas/internal/codec"
)

// The Open Inference Protocol v2 under /predict/v2 (clients call /api/predict/{name}/v2/...).
// The model name is the service name.

// v2Platform names the runtime as Triton does.
func v2Platform(f codec.Family) string {
	switch f {
	case codec.FamilyTensorFlow:
		return "tensorflow_graphdef"
	case codec.FamilyPyTorch:
		return "pytorch_libtorch"
	}
	return "onnxruntime_onnx"
}

// v2Target returns the loaded model when the path names it, else answers the request.
func (s *Server) v2Target(w http.ResponseWriter, r *http.Request) *model {
	if name := r.PathValue("model"); name != s.opts.Name {
		s.v2Error(w, http.StatusNotFound, fmt.Sprintf("unknown model %q; this service serves %q", name, s.opts.Name))
		return nil
	}
	md := s.model.Load()
	if md == nil {
		s.v2Error(w, http.StatusServiceUnavailable, "model is loading")
	}
	return md
}

func (s *Server) v2Error(w http.ResponseWriter, code int, msg string) {
	b := append(append([]byte(`{"error":`), quoteJSON(msg)...), '}')
	writeBody(w, code, codec.ContentTypeJSON, b)
}

func (s *Server) v2Model(w http.ResponseWriter, r *http.Request) {
	if md := s.v2Target(w, r); md != nil {
		writeBody(w, http.StatusOK, codec.ContentTypeJSON, md.metadata)
	}
}

func (s *Server) v2ModelReady(w http.ResponseWriter, r *http.Request) {
	if md := s.v2Target(w, r); md != nil {
		w.WriteHeader(http.StatusOK)
	}
}

func (s *Server) v2Infer(w http.ResponseWriter, r *http.Request) {
	md := s.v2Target(w, r)
	if md == nil {
		return
	}
	ctx, cancel := s.requestContext(r)
	defer cancel()
	buf, err := s.readBody(w, r)
	if err != nil {
		s.fail(w, r, err, true)
		return
	}
	reuse := true
	defer func() {
		if reuse {
			s.putBody(buf)
		}
	}()
	req, err := codec.DecodeV2InferSigned(r.Header, buf.Bytes(), md.sig, md.tfSigs)
	if err != nil {
		s.fail(w, r, err, true)
		return
	}
	t0 := time.Now()
	outs, batch, err := s.infer(ctx, md, req.Inputs, req.Outputs)
	setProcessorTime(w, t0, batch)
	if err != nil {
		reuse = !isContextErr(err) // an abandoned inference may still read the inputs
		s.fail(w, r, err, true)
		return
	}
	body, hdr, err := codec.EncodeV2Infer(req, s.opts.Name, outs, md.sig)
	if err != nil {
		s.fail(w, r, fmt.Errorf("encode response: %w", err), true)
		return
	}
	h := w.Header()
	for k, v := range hdr {
		h[k] = v
	}
	h.Set("Content-Length", fmt.Sprint(len(body)))
	w.WriteHeader(http.StatusOK)
	w.Write(body)
}
