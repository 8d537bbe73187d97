"""The same server as a Ray Serve application (`python -m server --ray`, or `serve run deploy/serve.yaml`).

`deployments.py`: the ingress (the FastAPI app of `server/api/`, jobs queued on its own folders) and the generator
(one replica per GPU; jobs routed by their (base, motion module) pair through Serve's model multiplexing);
`remote.py`: the ingress's executor, which sends a job to a generator replica and applies what streams back;
`replica.py`: a job run on a replica by the engine's own `run_job`, its events and files streamed as they come;
`launch.py`: the `--ray` command. `ray[serve]` is an optional extra: nothing else imports this package.
"""
