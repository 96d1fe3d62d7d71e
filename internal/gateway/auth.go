package gateway

import (
	"crypto/hmac"
	"crypto/md5"
	"crypto/sha1"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"net/http"
	"strings"
)

// authorize checks the request's Authorization header against the service token and
// returns "" when it is accepted, else a short reason for the 401 answer (never the
// token or the expected signature). It runs before the body is read, so that nobody
// without the token can make the gateway buffer a body; checkMD5 reports whether the
// body must then match Content-MD5 (see bodyMatchesMD5).
//
// Two forms are accepted, as in EAS:
//   - plain: "Authorization: <token>";
//   - signed (the official SDKs): "Authorization: EAS <sig>" where sig is
//     base64(HMAC-SHA1(token, METHOD\nContent-MD5\nContent-Type\nDate\nPATH)) and PATH is
//     "/api/predict/{service}{sub path}" as sent. The SDKs always POST, so METHOD is
//     "POST" for them; signing the actual method keeps a signature from being replayed
//     with another one. When Content-MD5 is present it must be the hex md5 of the body,
//     so the signature then covers the body too.
//
// The Date header is signed but not checked against the clock: EAS does not check it,
// and the Go SDK formats local time with a literal "GMT", so its Date is off by the
// client's UTC offset; refusing skewed dates would lock those clients out.
//
// A service without a token accepts nobody: the deploy layer always sets one.
func authorize(r *http.Request, token, path string) (msg string, checkMD5 bool) {
	auth := r.Header.Get("Authorization")
	if auth == "" {
		return "missing Authorization header", false
	}
	if token == "" {
		return "service has no access token", false
	}
	sig, signed := strings.CutPrefix(auth, "EAS ")
	if !signed {
		if subtle.ConstantTimeCompare([]byte(auth), []byte(token)) != 1 {
			return "invalid access token", false
		}
		return "", false
	}
	got, err := base64.StdEncoding.DecodeString(strings.TrimSpace(sig))
	if err != nil {
		return "malformed signature", false
	}
	contentMD5 := r.Header.Get("Content-MD5")
	mac := hmac.New(sha1.New, []byte(token))
	// Write the signed string piecewise: no concatenation garbage per request.
	for i, part := range [...]string{r.Method, contentMD5, r.Header.Get("Content-Type"), r.Header.Get("Date"), path} {
		if i > 0 {
			mac.Write([]byte{'\n'})
		}
		mac.Write([]byte(part))
	}
	if !hmac.Equal(got, mac.Sum(nil)) {
		return "invalid signature", false
	}
	return "", contentMD5 != ""
}

// bodyMatchesMD5 reports whether body's md5 is the request's hex Content-MD5.
func bodyMatchesMD5(r *http.Request, body []byte) bool {
	want, err := hex.DecodeString(r.Header.Get("Content-MD5"))
	sum := md5.Sum(body)
	return err == nil && hmac.Equal(want, sum[:])
}

// Sign returns the Authorization header value of a signed request, as the EAS SDKs
// build it. Useful for clients and tests.
func Sign(token, method, contentMD5, contentType, date, path string) string {
	mac := hmac.New(sha1.New, []byte(token))
	mac.Write([]byte(method + "\n" + contentMD5 + "\n" + contentType + "\n" + date + "\n" + path))
	return "EAS " + base64.StdEncoding.EncodeToString(mac.Sum(nil))
}
