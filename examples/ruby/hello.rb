# A faasd function in Ruby: greets the route's `{name}` parameter, else the
# `name` query parameter, else the world. `?format=json` answers JSON.
#
#   faas deploy hello.rb --env ruby --route '/hello/{name}'
#   curl http://127.0.0.1:8080/hello/Ada

def main(context)
  request = context.request
  name = request.params["name"] || request.query["name"] || "world"
  name = name.last if name.is_a?(Array) # ?name=a&name=b: the last one
  return { "greeting" => "Hello, #{name}!" } if request.query["format"] == "json"

  "Hello, #{name}!\n"
end
