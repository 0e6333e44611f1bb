// The ceiling: a bare node:http server answering every request with the same small JSON the
// authenticated GET returns (BODY), so the bench can say what fraction of it the API reaches.
import { createServer } from 'node:http'

const body = Buffer.from(process.env.BODY ?? '{}')
createServer((request, response) => {
  request.resume()
  response.writeHead(200, { 'content-type': 'application/json; charset=utf-8', 'content-length': body.length })
  response.end(body)
}).listen(Number(process.env.PORT), '127.0.0.1')
