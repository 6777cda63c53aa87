-- wrk request for P2's reference side: the same Twilio Messages API POST
-- crier sends (body, path and Basic auth taken from a request crier made).
wrk.method = "POST"
wrk.path = os.getenv("P2_PATH")
wrk.body = os.getenv("P2_BODY")
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
wrk.headers["Authorization"] = os.getenv("P2_AUTH")
