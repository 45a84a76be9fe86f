-- wrk script of benchmarks/hot_path.py: POST the JSON body given in $WRK_BODY.
-- Other headers (Authorization) come from wrk's -H options.
wrk.method = "POST"
wrk.body = os.getenv("WRK_BODY") or "{}"
wrk.headers["Content-Type"] = "application/json"
