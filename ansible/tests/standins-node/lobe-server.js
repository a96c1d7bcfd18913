// Stand-in for LobeChat's built .next/standalone/server.js: answers every
// request with its build mark and the environment the unit gave it.
const http = require("http");
const mark = "BUILD_MARK";
http
  .createServer((req, res) => {
    res.setHeader("content-type", "application/json");
    res.end(JSON.stringify({ mark, ollama: process.env.OLLAMA_PROXY_URL, enabled: process.env.ENABLED_OLLAMA }));
  })
  .listen(Number(process.env.PORT), process.env.HOSTNAME);
