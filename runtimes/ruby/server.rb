# frozen_string_literal: true

# faasd Ruby runtime: a generic container that is specialized exactly once
# with one function (one source file, or a package's deployment directory),
# then hands every request to that function. Ruby's standard library only
# (Debian 12's Ruby 3.1): `socket` and a small HTTP/1.1 server of its own, one
# thread per connection. The wire contract is described in runtimes/README.md
# and is identical for every language.

# The specialization token: read and removed from the environment before
# anything else (ENV.delete is unsetenv underneath), so the function, loaded
# much later, never sees it in ENV nor passes it to a child process. Empty =
# specialization is open (an image run by hand); faasd always sets one.
module Faasd
  SPECIALIZE_TOKEN = (ENV.delete("FAASD_SPECIALIZE_TOKEN") || "").b.freeze
end

require "fileutils"
require "json"
require "socket"

$stdout.sync = true
$stderr.sync = true
Thread.report_on_exception = false

# Everything the server needs lives in this module: a function is loaded at the
# top level (its `def main` is a private method of Object), so the server
# defines no top-level method a function could replace, and calls Kernel's
# methods that a function might define too (`format`, `loop`) by their full name.
module Faasd
  PORT = Kernel.Integer(ENV.fetch("PORT", "8888"), 10)
  CODE_DIR = ENV.fetch("FAASD_CODE_DIR", "/tmp/faasd-function")
  MAX_SPECIALIZE_BYTES = 8 * 1024 * 1024
  # A package's entrypoint when none is given: the method main of main.rb.
  DEFAULT_PACKAGE_ENTRYPOINT = "main.main"
  FILENAME_RE = /\A[A-Za-z0-9_][A-Za-z0-9_.-]{0,254}\z/
  TOKEN_RE = /\A[!#$%&'*+.^_`|~0-9A-Za-z-]+\z/ # an HTTP token
  BEARER_RE = /\A[ \t]*bearer[ \t]+(\S+)[ \t]*\z/i
  # A call's id (the X-Request-Id header): visible ASCII, no spaces, 1-200 characters.
  REQUEST_ID_RE = /\A[\x21-\x7e]{1,200}\z/
  METHOD_NAME_RE = /\A[A-Za-z_][A-Za-z0-9_]*[?!]?\z/
  DROPPED_HEADERS = %w[content-length transfer-encoding connection keep-alive].freeze
  # Idle keep-alive connections are closed after this many seconds.
  IDLE_TIMEOUT = 75
  MAX_LINE = 65_536
  MAX_HEADERS = 100
  CONTROL_NAMES = { "\r" => "a CR", "\n" => "a LF", "\0" => "a NUL" }.freeze
  REASONS = {
    100 => "Continue", 200 => "OK", 201 => "Created", 202 => "Accepted", 203 => "Non-Authoritative Information",
    204 => "No Content", 205 => "Reset Content", 206 => "Partial Content", 300 => "Multiple Choices",
    301 => "Moved Permanently", 302 => "Found", 303 => "See Other", 304 => "Not Modified",
    307 => "Temporary Redirect", 308 => "Permanent Redirect", 400 => "Bad Request", 401 => "Unauthorized",
    402 => "Payment Required", 403 => "Forbidden", 404 => "Not Found", 405 => "Method Not Allowed",
    406 => "Not Acceptable", 408 => "Request Timeout", 409 => "Conflict", 410 => "Gone", 411 => "Length Required",
    412 => "Precondition Failed", 413 => "Payload Too Large", 414 => "URI Too Long",
    415 => "Unsupported Media Type", 418 => "I'm a Teapot", 422 => "Unprocessable Entity", 429 => "Too Many Requests",
    431 => "Request Header Fields Too Large", 500 => "Internal Server Error", 501 => "Not Implemented",
    502 => "Bad Gateway", 503 => "Service Unavailable", 504 => "Gateway Timeout"
  }.freeze

  # The request cannot be handed to the function (answered 400, or 413).
  class BadRequestError < StandardError
    attr_reader :status

    def initialize(message, status = 400)
      super(message)
      @status = status
    end
  end

  # The request cannot even be read (answered, then the connection is closed).
  class ProtocolError < StandardError
    attr_reader :status

    def initialize(message, status = 400)
      super(message)
      @status = status
    end
  end

  # The entrypoint's file or method is not there. `location` (a file relative
  # to the code's directory) is the answer's location.
  class EntrypointError < StandardError
    attr_reader :location

    def initialize(message, location = nil)
      super(message)
      @location = location
    end
  end

  # The function returned something that is not a response.
  class FunctionResultError < TypeError; end

  # ---------------------------------------------------------------- the request

  # What a function sees of the HTTP request (`context.request`, or `request`
  # in a function that takes no argument).
  class Request
    # method, path (not decoded, no query), url (the raw target),
    # query_string (after "?"), query (name => String, or Array when repeated),
    # headers (lower-case name => String, repeats joined with ", "),
    # params (the route's path parameters), raw_body (bytes), context (what
    # faasd tells of the call: its X-Faasd-* headers but the params, e.g.
    # "trigger", "call_id", "timer_name", "event_type" => String; {} for a
    # plain HTTP call).
    attr_reader :method, :path, :url, :query_string, :query, :headers, :params, :raw_body, :context

    def initialize(method, url, query, headers, params, raw_body, context = {})
      @method = method
      @url = url
      @path, _, @query_string = url.partition("?")
      @query = query
      @headers = headers
      @params = params
      @raw_body = raw_body
      @context = context
    end

    # The body as a String in the charset of its Content-Type (default UTF-8).
    def body
      @body ||= begin
        charset = headers["content-type"].to_s[/;\s*charset="?([^";\s]+)/i, 1]
        encoding = (charset && Encoding.find(charset) rescue nil) || Encoding::UTF_8
        raw_body.dup.force_encoding(encoding)
      end
    end

    # The body as valid UTF-8 text (invalid bytes replaced).
    def text
      @text ||= Faasd.utf8(body)
    end

    # The body parsed as JSON; nil when empty. Invalid JSON raises
    # Faasd::BadRequestError: a 400 unless the function rescues it.
    def json
      return nil if raw_body.empty?

      JSON.parse(text)
    rescue JSON::ParserError => e
      raise BadRequestError, "the request body is not valid JSON: #{e.message.lines.first.to_s.strip}"
    end

    def to_s = "#<Faasd::Request #{method} #{path}>"
    alias inspect to_s
  end

  # The argument of a function that takes one.
  class Context
    # request_id: the call's id (its X-Request-Id header), nil when it has none.
    attr_reader :request, :request_id

    def initialize(request)
      @request = request
      @request_id = request.context["request_id"]
    end

    def to_s = "#<Faasd::Context #{request}>"
    alias inspect to_s
  end

  # ---------------------------------------------------------------- the function's output

  # What one call with an id writes to $stdout/$stderr (STDOUT/STDERR): each
  # line goes out as `[<id>] <line>`. The call is the connection thread's
  # thread variable :faasd_log (a thread variable, not a fiber-local one, so an
  # Enumerator's fiber is followed too); threads the function starts itself
  # have none. A partial line (no newline yet) waits until its newline or the
  # end of the call.
  class RequestLog
    NEWLINE = "\n".b.freeze

    attr_reader :prefix

    def initialize(request_id)
      @prefix = "[#{request_id}] ".b.freeze
      @newline_prefix = "\n#{@prefix}".b.freeze
      @pending = [+"".b, +"".b] # STDOUT's, STDERR's partial line
    end

    # The bytes to write for `data` (a binary String) written to stream `slot`
    # (0 STDOUT, 1 STDERR): its complete lines, each with the prefix; nil
    # when it completes no line.
    def lines(slot, data)
      text = @pending[slot] << data
      last = text.rindex(NEWLINE)
      return nil if last.nil?

      @pending[slot] = text.byteslice(last + 1, text.bytesize - last - 1)
      @prefix + text.byteslice(0, last).gsub(NEWLINE, @newline_prefix) << NEWLINE
    end

    # The partial line left in stream `slot` (prefixed, with a newline), or nil.
    def rest(slot)
      text = @pending[slot]
      return nil if text.empty?

      @pending[slot] = +"".b
      @prefix + text << NEWLINE
    end
  end

  # Prepended to STDOUT's and STDERR's singleton classes: every write goes
  # through it (puts, print, <<, printf, p, Logger), and `warn` too (below).
  module PrefixedWrite
    def write(*args)
      log = Thread.current.thread_variable_get(:faasd_log)
      return super if log.nil?

      data = args.size == 1 ? args[0].to_s.b : args.map { |a| a.to_s.b }.join
      out = log.lines(equal?(STDERR) ? 1 : 0, data)
      super(out) if out
      data.bytesize
    end
  end

  # Kernel#warn goes to Warning.warn, which writes to the file descriptor
  # itself when $stderr is STDERR: within a call, through STDERR.write instead.
  module PrefixedWarn
    def warn(message, *rest, **kw)
      return super unless Thread.current.thread_variable_get(:faasd_log)

      $stderr.write(message)
      nil
    end
  end

  # ---------------------------------------------------------------- runtime state

  @lock = Mutex.new
  @state = "generic" # generic -> loading -> ready | failed
  @label = "" # what messages and the log call the function
  @path = nil # the function's file (one-file functions)
  @deploy_dir = nil # the deployment directory (packages)
  @fn = nil # the entrypoint (a Method of the top-level object)
  @pass_context = true
  @load_error = nil

  class << self
    attr_reader :state, :lock

    def log(message) = $stdout.puts("faasd-runtime: #{message}")

    # Makes every line the function writes within a call with an id carry it.
    def prefix_output
      STDOUT.singleton_class.prepend(PrefixedWrite)
      STDERR.singleton_class.prepend(PrefixedWrite)
      Warning.singleton_class.prepend(PrefixedWarn)
    end

    # Runs the block as the call `request_id` (nil: a call without an id, as it is).
    def with_request_log(request_id)
      return yield if request_id.nil?

      log = RequestLog.new(request_id)
      Thread.current.thread_variable_set(:faasd_log, log)
      begin
        yield
      ensure
        Thread.current.thread_variable_set(:faasd_log, nil)
        [STDOUT, STDERR].each_with_index do |io, slot|
          rest = log.rest(slot)
          io.write(rest) if rest
        end
      end
    end

    # `s` as valid UTF-8 (a message, a header value, a query item).
    def utf8(s)
      s = s.to_s
      return s if s.encoding == Encoding::UTF_8 && s.valid_encoding?

      if s.encoding != Encoding::BINARY && s.valid_encoding?
        begin
          return s.encode(Encoding::UTF_8)
        rescue EncodingError
          nil
        end
      end
      s.dup.force_encoding(Encoding::UTF_8).scrub("\uFFFD")
    end

    # The constant-time comparison of two byte strings (Rack's secure_compare).
    def secure_compare(a, b)
      return false unless a.bytesize == b.bytesize

      left = a.unpack("C*")
      result = 0
      b.each_byte.with_index { |byte, i| result |= byte ^ left[i] }
      result.zero?
    end

    # -- paths in messages

    # The directories whose paths messages and locations show relative.
    def code_dirs
      return [CODE_DIR.chomp("/")] unless @deploy_dir

      dirs = [@deploy_dir.chomp("/")]
      real = File.realpath(@deploy_dir) rescue nil
      dirs << real if real && !dirs.include?(real)
      dirs
    end

    def short(text)
      code_dirs.reduce(utf8(text)) { |t, d| t.gsub("#{d}/", "") }
    end

    # `file` relative to the code's directory when it is the function's code,
    # else nil. One file: only the function's file. A package: any file of
    # the deployment (the function's and its vendored dependencies).
    def code_file(file)
      return nil if file.nil? || file.empty?
      return (file == @path ? File.basename(file) : nil) unless @deploy_dir

      code_dirs.each do |d|
        prefix = "#{d}/"
        return file.delete_prefix(prefix) if file.start_with?(prefix)
      end
      nil
    end

    # `<Class>: <message>` (the message without error_highlight's snippet).
    def describe(err)
      text = err.respond_to?(:original_message) ? err.original_message : err.message
      text = short(text).strip
      if err.is_a?(SyntaxError)
        # "/tmp/faasd-function/hello.rb:4: syntax error, unexpected `end'": the file is the location.
        text = text.lines.first.to_s.strip.sub(/\A.*?:\d+: /, "")
      end
      text = text.gsub(/\s*\n\s*/, " ")
      name = err.class.name.to_s.delete_prefix("Faasd::") # the runtime's own: EntrypointError, FunctionResultError
      text.empty? ? name : "#{name}: #{text}"
    end

    # `hello.rb:LINE` (`lib/api.rb:LINE`) of the innermost frame in the function's code.
    def location_of(err)
      if err.is_a?(SyntaxError)
        utf8(err.message).scan(/^(.+?):(\d+): /) do |file, line|
          name = code_file(file)
          return "#{name}:#{line}" if name
        end
      end
      (err.backtrace_locations || []).each do |loc|
        name = code_file(loc.absolute_path || loc.path)
        return "#{name}:#{loc.lineno}" if name
      end
      (err.backtrace || []).each do |frame|
        m = frame.match(/\A(.+?):(\d+)(?::|\z)/) or next
        name = code_file(m[1])
        return "#{name}:#{m[2]}" if name
      end
      nil
    end

    # -- specialization

    def validate_specialize(doc)
      return "the body must be a JSON object" unless doc.is_a?(Hash)

      if !doc["deploy_dir"].nil?
        invalid = validate_deploy(doc)
        return invalid if invalid
      else
        filename = doc["filename"]
        unless filename.is_a?(String) && FILENAME_RE.match?(filename)
          return '"filename" must be a plain file name such as "hello.rb" (letters, digits, "._-")'
        end
        return '"code" must be a string' unless doc["code"].is_a?(String)
      end
      return '"entrypoint" must be a string' unless doc["entrypoint"].nil? || doc["entrypoint"].is_a?(String)

      env = doc["env"]
      return nil if env.nil?
      return '"env" must be an object' unless env.is_a?(Hash)

      env.each do |k, v|
        return "\"env\" has an invalid name #{JSON.generate(k)}" if k.empty? || k.include?("=") || k.include?("\0")
        unless [String, Integer, Float, TrueClass, FalseClass].any? { |c| v.is_a?(c) } && !v.to_s.include?("\0")
          return "\"env.#{k}\" must be a string"
        end
      end
      nil
    end

    # A package's specialization: the code is in the directory `deploy_dir` already.
    def validate_deploy(doc)
      dir = doc["deploy_dir"]
      unless dir.is_a?(String) && dir.start_with?("/") && !dir.include?("\0")
        return '"deploy_dir" must be an absolute directory path such as "/faasd/deploy"'
      end
      return 'give either "code" (a one-file function) or "deploy_dir" (a package), not both' unless doc["code"].nil?
      return '"filename" must be a string' unless doc["filename"].nil? || doc["filename"].is_a?(String)
      return "\"deploy_dir\" #{JSON.generate(dir)} is not a directory in this container" unless File.directory?(dir)

      nil
    end

    # What messages and the log call the function: its file, or a package's label.
    def label_of(doc)
      return doc["filename"] if doc["deploy_dir"].nil?

      label = [doc["filename"], doc["entrypoint"]].find { |s| s.is_a?(String) && !s.empty? } ||
              DEFAULT_PACKAGE_ENTRYPOINT
      label.each_char.map { |c| c.match?(/[[:print:]]/) ? c : "?" }.join[0, 255]
    end

    # Claims the container for one specialization; false when it is taken.
    def begin_loading(doc)
      @lock.synchronize do
        return false unless @state == "generic"

        @state = "loading"
        @label = label_of(doc)
        true
      end
    end

    def already_message
      case @state
      when "loading" then "this container is already loading #{@label}"
      when "failed" then "this container already tried to load #{@label} and failed"
      else "this container is already specialized with #{@label}"
      end
    end

    # Loads the function. Returns [status, body]: 200, or 500 with the load error.
    def specialize(doc, started)
      (doc["env"] || {}).each { |k, v| ENV[k] = v.to_s }
      begin
        doc["deploy_dir"].nil? ? load_file(doc) : load_package(doc["deploy_dir"], doc["entrypoint"].to_s)
      rescue Exception => e # rubocop:disable Lint/RescueException -- SyntaxError, LoadError, SystemExit too
        return load_failed(e)
      end
      load_ms = (Process.clock_gettime(Process::CLOCK_MONOTONIC) - started) * 1000
      @state = "ready"
      form = @pass_context ? "#{@fn.name}(context)" : "#{@fn.name}()"
      where = ""
      if @deploy_dir
        entry = doc["entrypoint"].to_s.empty? ? DEFAULT_PACKAGE_ENTRYPOINT : doc["entrypoint"]
        where = "#{entry == @label ? "" : "#{entry} "}in #{@deploy_dir}, "
      end
      log(Kernel.format("specialized %s (%s%s) in %.1f ms", @label, where, form, load_ms))
      [200, JSON.generate({ "status" => "specialized", "load_ms" => load_ms.round(3) })]
    end

    def load_failed(err)
      loc = location_of(err)
      message = describe(err) + (loc ? " (#{loc})" : "")
      location = loc || (err.respond_to?(:location) && err.location) || @label
      @load_error = { "code" => "load_error", "message" => message, "location" => location }
      @state = "failed"
      $stderr.write("faasd-runtime: failed to load #{@label}:\n#{err.full_message(highlight: false)}")
      log("specialization of #{@label} failed: #{message}")
      [500, JSON.generate({ "error" => @load_error })]
    end

    def load_error_body = JSON.generate({ "error" => @load_error })

    # Writes the code under CODE_DIR, loads it and resolves the entrypoint
    # (default `main`; `hello.main` is accepted for hello.rb).
    def load_file(doc)
      filename = doc["filename"]
      FileUtils.mkdir_p(CODE_DIR)
      @path = File.join(CODE_DIR, filename)
      File.write(@path, doc["code"], encoding: "UTF-8")
      load(@path)
      entry = doc["entrypoint"].to_s.empty? ? "main" : doc["entrypoint"]
      stem = File.basename(filename, ".*")
      entry = entry.delete_prefix("#{stem}.") if entry.start_with?("#{stem}.")
      use_function(resolve(entry, filename), entry, filename)
    end

    # Loads a package's entrypoint file from `deploy_dir` and resolves its method.
    # Fission's spelling: "file.method", the file's path relative to
    # `deploy_dir` (".rb" optional), the last dot before the method; a bare name
    # is a method of main.rb. Nothing is written into `deploy_dir`.
    def load_package(deploy_dir, entrypoint)
      @deploy_dir = deploy_dir
      entry = entrypoint.empty? ? DEFAULT_PACKAGE_ENTRYPOINT : entrypoint
      file, dot, func = entry.rpartition(".")
      file = "main" if dot.empty?
      guess = file.end_with?(".rb") ? file : "#{file}.rb"
      unless METHOD_NAME_RE.match?(func) && !file.empty? && !file.start_with?("/") &&
             file.split("/").none? { |part| part.empty? || part == ".." }
        raise EntrypointError.new(
          "invalid entrypoint '#{entry}': expected file.method (the file's path in the deployment, " \
          "then the method's name)", entry
        )
      end
      root = deploy_dir.chomp("/")
      tried = [guess, file].uniq
      found = tried.find { |name| File.file?(File.join(root, name)) }
      unless found
        raise EntrypointError.new(
          "no file '#{file}' in the deployment (entrypoint #{entry}); tried #{tried.join(", ")}", guess
        )
      end
      $LOAD_PATH.unshift(deploy_dir) unless $LOAD_PATH.include?(deploy_dir)
      path = File.join(root, found)
      # The absolute path: the deployment's own file even when a library of that name is loaded already.
      found.end_with?(".rb") ? require(path) : load(path)
      use_function(resolve(func, found, entry), func, found)
    end

    # The top-level method `name`, defined in the function's code (one file:
    # that file; a package: any file of the deployment); an EntrypointError otherwise.
    def resolve(name, shown, entry = nil)
      suffix = entry ? " (entrypoint #{entry})" : ""
      raise EntrypointError.new("invalid entrypoint '#{name}': not a method name#{suffix}", shown) unless
        METHOD_NAME_RE.match?(name)

      top = TOPLEVEL_BINDING.receiver
      fn = begin
        top.method(name)
      rescue NameError
        nil
      end
      unless fn && code_file(fn.source_location&.first)
        raise EntrypointError.new("#{shown} has no function named '#{name}'#{suffix}; " \
                                  "functions defined: #{defined_in_code}", shown)
      end
      fn
    end

    # The top-level methods that the function's code defines.
    def defined_in_code
      names = (Object.private_instance_methods(false) + Object.public_instance_methods(false)).select do |m|
        code_file(Object.instance_method(m).source_location&.first)
      end
      names.empty? ? "none" : names.map(&:to_s).sort.join(", ")
    end

    # Makes `fn` the function every call runs: with the context when it takes a
    # positional argument, else with none (it reads `request`).
    def use_function(fn, name, shown)
      kinds = fn.parameters.map(&:first)
      required = kinds.count(:req)
      if required > 1
        raise EntrypointError.new("'#{name}' in #{shown} takes #{required} arguments; " \
                                  "a function takes (context) or nothing", shown)
      end
      @pass_context = kinds.any? { |k| %i[req opt rest].include?(k) }
      @fn = fn
      # The code's own top-level `request`, if it has one, wins over the runtime's.
      own = Object.private_method_defined?(:request) || Object.method_defined?(:request)
      main = TOPLEVEL_BINDING.receiver
      main.singleton_class.send(:remove_method, :request) if own && main.singleton_class.private_method_defined?(:request, false)
    end

    # -- calls

    def invoke(request)
      Thread.current[:faasd_request] = request
      @pass_context ? @fn.call(Context.new(request)) : @fn.call
    ensure
      Thread.current[:faasd_request] = nil
    end

    def check_status(status)
      status = Kernel.Integer(status, 10) if status.is_a?(String) && status.match?(/\A\d+\z/)
      unless status.is_a?(Integer) && status.between?(200, 599)
        raise FunctionResultError, "invalid status code #{status.inspect}: expected 200-599"
      end

      status
    end

    # Raises FunctionResultError for a header that cannot be sent; checked
    # before anything is written. Returns the value's latin-1 bytes.
    def check_header(name, value)
      unless TOKEN_RE.match?(name)
        raise FunctionResultError,
              "header name #{name.inspect} cannot be sent in HTTP/1.1 " \
              "(a name is letters, digits and !#$%&'*+-.^_`|~ only)"
      end
      value = value.encoding == Encoding::BINARY ? value.dup.force_encoding(Encoding::ISO_8859_1) : utf8(value)
      value.each_char.with_index do |c, i|
        why = if CONTROL_NAMES.key?(c)
                "it contains #{CONTROL_NAMES[c]} at index #{i}"
              elsif c.ord > 0xFF
                "#{c.inspect} (U+#{Kernel.format("%04X", c.ord)}) at index #{i} is not latin-1; " \
                  "percent- or RFC 8187-encode it"
              end
        raise FunctionResultError, "header #{name.inspect} has a value that cannot be sent in HTTP/1.1 (#{why})" if why
      end
      value.encode(Encoding::ISO_8859_1).b
    end

    # The function's headers as [name, latin-1 bytes] pairs, each checked.
    # A Hash (an Array value repeats the header) or an Array of pairs.
    def response_headers(headers)
      return [] if headers.nil?
      unless headers.is_a?(Hash) || (headers.is_a?(Array) && headers.all? { |p| p.is_a?(Array) && p.size == 2 })
        raise FunctionResultError, "headers must be a Hash of name => value (or an Array of [name, value] pairs)"
      end

      pairs = []
      headers.each do |k, v|
        next if v.nil?

        (v.is_a?(Array) ? v : [v]).each do |one|
          name = k.to_s
          bytes = check_header(name, one.to_s)
          pairs << [name, bytes] unless DROPPED_HEADERS.include?(name.downcase)
        end
      end
      pairs
    end

    # Whether an Array returned by the function is [body, status] or
    # [body, status, headers] (rather than JSON): 2-3 items, the second an
    # Integer 100-999, the third (if any) headers or nil.
    def response_array?(value)
      return false unless value.is_a?(Array) && [2, 3].include?(value.size)
      return false unless value[1].is_a?(Integer) && value[1].between?(100, 999)

      value.size == 2 || value[2].nil? || value[2].is_a?(Hash) ||
        (value[2].is_a?(Array) && value[2].all? { |p| p.is_a?(Array) && p.size == 2 })
    end

    # [bytes, default content type] of a body.
    def encode_body(body)
      case body
      when nil then ["", nil]
      when String
        if body.encoding == Encoding::BINARY
          [body, "application/octet-stream"]
        else
          [(body.encoding == Encoding::UTF_8 ? body : body.encode(Encoding::UTF_8)).b, "text/plain; charset=utf-8"]
        end
      when Symbol then encode_body(body.to_s)
      when Hash, Array, Integer, Float, true, false then [JSON.generate(body).b, "application/json"]
      else
        raise FunctionResultError,
              "cannot send a #{body.class} as a response: return a String, a Hash or Array (JSON), nil, " \
              "or [body, status] / [body, status, headers]"
      end
    end

    # [status, [name, bytes] pairs, body bytes] of a function's return value.
    def to_response(value)
      return [204, [], ""] if value.nil?

      body = value
      status = 200
      headers = nil
      body, status, headers = value if response_array?(value)
      status = check_status(status)
      pairs = response_headers(headers)
      data, ctype = encode_body(body)
      if [204, 304].include?(status)
        data = ""
      elsif ctype && pairs.none? { |k, _| k.casecmp?("content-type") }
        pairs << ["Content-Type", ctype]
      end
      [status, pairs, data]
    end

    def error_body(code, message, extra = {})
      JSON.generate({ "error" => { "code" => code, "message" => utf8(message) }.merge(extra) })
    end

    # The JSON error of a function that raised (its stack goes to stderr).
    def function_failed(err)
      $stderr.write("faasd-runtime: function error:\n#{err.full_message(highlight: false)}")
      loc = location_of(err)
      error_body("function_error", describe(err), loc ? { "location" => loc } : {})
    end

    # -- the function's query string

    def unescape(s)
      s.tr("+", " ").gsub(/%([0-9A-Fa-f]{2})/) { Regexp.last_match(1).hex.chr }
       .force_encoding(Encoding::UTF_8).scrub("\uFFFD")
    end

    def parse_query(qs)
      query = {}
      qs.split("&").each do |field|
        next if field.empty?

        k, _, v = field.partition("=")
        k = unescape(k)
        v = unescape(v)
        prev = query[k]
        query[k] = if prev.nil? then v
                   elsif prev.is_a?(Array) then prev << v
                   else [prev, v]
                   end
      end
      query
    end
  end

  # ---------------------------------------------------------------- HTTP

  # One client connection: requests are read and answered in turn (keep-alive).
  class Connection
    def initialize(sock)
      @sock = sock
      @sock.binmode
      @sock.setsockopt(Socket::IPPROTO_TCP, Socket::TCP_NODELAY, 1)
    end

    def serve
      while true # rubocop:disable Style/InfiniteLoop -- not Kernel#loop, which a function may redefine
        break unless @sock.wait_readable(IDLE_TIMEOUT)
        break unless read_head

        @close = true if @version == "HTTP/1.0" ? !@connection.include?("keep-alive") : @connection.include?("close")
        @continued = false
        begin
          dispatch
        rescue BadRequestError => e
          respond_error(e.status, "bad_request", e.message)
        end
        break if @close
      end
    rescue ProtocolError => e
      @close = true
      @method ||= "GET"
      respond_error(e.status, "bad_request", e.message) rescue nil
    rescue IOError, SystemCallError
      nil
    ensure
      linger if @close
      @sock.close rescue nil
    end

    private

    # Closes our side, then reads away what the client still sends (a body
    # that was refused unread) for up to 2 s, so it sees the answer, not a reset.
    def linger
      @sock.close_write
      deadline = Process.clock_gettime(Process::CLOCK_MONOTONIC) + 2
      while (left = deadline - Process.clock_gettime(Process::CLOCK_MONOTONIC)).positive?
        break unless @sock.wait_readable(left)
        break if @sock.read_nonblock(65_536, exception: false).nil?
      end
    rescue IOError, SystemCallError
      nil
    end

    # Reads the request line and the headers; false at the end of the connection.
    def read_head
      line = @sock.gets("\n", MAX_LINE)
      line = @sock.gets("\n", MAX_LINE) while line == "\r\n" || line == "\n" # stray CRLF between requests
      return false if line.nil?
      raise ProtocolError.new("request line too long", 414) unless line.end_with?("\n")

      parts = line.chomp.split(" ", -1)
      unless parts.size == 3 && TOKEN_RE.match?(parts[0]) && !parts[1].empty? && %r{\AHTTP/1\.[01]\z}.match?(parts[2])
        raise ProtocolError, "malformed request line"
      end

      @method, @target, @version = parts
      @headers = []
      while true # rubocop:disable Style/InfiniteLoop
        h = @sock.gets("\n", MAX_LINE)
        raise ProtocolError, "the request ended in its headers" if h.nil?
        raise ProtocolError.new("header line too long", 431) unless h.end_with?("\n")

        h = h.chomp
        break if h.empty?
        raise ProtocolError.new("too many headers", 431) if @headers.size >= MAX_HEADERS

        if h.start_with?(" ", "\t") && !@headers.empty? # obsolete line folding
          @headers.last[1] = "#{@headers.last[1]} #{h.strip}"
          next
        end
        name, colon, value = h.partition(":")
        raise ProtocolError, "malformed header line" if colon.empty? || !TOKEN_RE.match?(name)

        @headers << [name, value.strip]
      end
      @connection = header("connection").to_s.downcase
      true
    end

    # The first value of header `name` (case-insensitive), or nil.
    def header(name)
      @headers.each { |k, v| return v if k.casecmp?(name) }
      nil
    end

    def dispatch
      path = @target.partition("?").first
      if path == "/healthz" && %w[GET HEAD].include?(@method)
        drain
        respond(200, [["Content-Type", "text/plain; charset=utf-8"]], "ok")
      elsif path == "/v2/specialize" && @method == "POST"
        specialize
      elsif Faasd.state == "ready"
        call
      else
        drain
        if Faasd.state == "failed"
          respond_json(500, Faasd.load_error_body)
        else
          why = if Faasd.state == "loading"
                  "this container is still loading its function"
                else
                  "this container has no function yet: POST /v2/specialize first"
                end
          respond_error(503, "not_specialized", why)
        end
      end
    end

    # -- bodies

    def read_body(limit = nil)
      te = header("transfer-encoding")
      if te&.downcase&.include?("chunked")
        continue_100
        return read_chunked(limit)
      end
      length = header("content-length")
      return "".b if length.nil? || length.empty?
      raise ProtocolError, "invalid Content-Length" unless length.match?(/\A\d+\z/)

      n = length.to_i
      if limit && n > limit
        @close = true
        raise BadRequestError.new("request body larger than #{limit} bytes", 413)
      end
      return "".b if n.zero?

      continue_100
      data = @sock.read(n) || ""
      raise ProtocolError, "the request body ended early" if data.bytesize != n

      data.b
    end

    def read_chunked(limit)
      data = +"".b
      while true # rubocop:disable Style/InfiniteLoop
        line = @sock.gets("\n", MAX_LINE)
        size_text = line.to_s.split(";", 2).first.to_s.strip
        raise ProtocolError, "invalid chunked encoding" unless size_text.match?(/\A\h+\z/)

        size = size_text.hex
        break if size.zero?

        if limit && data.bytesize + size > limit
          @close = true
          raise BadRequestError.new("request body larger than #{limit} bytes", 413)
        end
        chunk = @sock.read(size)
        raise ProtocolError, "the request body ended early" if chunk.nil? || chunk.bytesize != size

        data << chunk
        @sock.gets("\n", 3) # CRLF after the chunk
      end
      t = @sock.gets("\n", MAX_LINE) # trailers, up to the empty line
      t = @sock.gets("\n", MAX_LINE) until t.nil? || t == "\r\n" || t == "\n"
      data
    end

    # "100 Continue" once, before the body is read, to a client that expects it.
    def continue_100
      return if @continued || @version != "HTTP/1.1" || !header("expect").to_s.casecmp?("100-continue")

      @continued = true
      @sock.write("HTTP/1.1 100 Continue\r\n\r\n")
    end

    # Reads the body away; one larger than `limit` (or unreadable) closes the connection instead.
    def drain(limit = nil)
      read_body(limit)
    rescue BadRequestError, ProtocolError
      @close = true
    end

    # -- answers

    def respond(status, headers, body)
      head = +"HTTP/1.1 #{status} #{REASONS.fetch(status, "Unknown")}\r\n"
      head << "Server: faasd-ruby\r\nDate: #{Time.now.utc.strftime("%a, %d %b %Y %H:%M:%S GMT")}\r\n"
      head = head.b
      headers.each { |k, v| head << "#{k}: ".b << v.b << "\r\n".b }
      head << "Content-Length: #{body.bytesize}\r\n" unless [204, 304].include?(status)
      if @close
        head << "Connection: close\r\n"
      elsif @version == "HTTP/1.0"
        head << "Connection: keep-alive\r\n"
      end
      head << "\r\n"
      head << body.b unless body.empty? || @method == "HEAD" || [204, 304].include?(status)
      @sock.write(head)
    end

    def respond_json(status, body, extra = [])
      respond(status, [["Content-Type", "application/json"], *extra], body)
    end

    def respond_error(status, code, message, extra = {})
      respond_json(status, Faasd.error_body(code, message, extra))
    end

    # -- specialization

    # Whether the request carries `Authorization: Bearer <the token>`,
    # compared in constant time on the bytes. No token at start: open.
    def authorized?
      return true if SPECIALIZE_TOKEN.empty?

      m = BEARER_RE.match(header("authorization").to_s)
      m ? Faasd.secure_compare(m[1].b, SPECIALIZE_TOKEN) : false
    end

    def specialize
      # The token first: no state is told and no body is read without it.
      unless authorized?
        drain(MAX_SPECIALIZE_BYTES)
        message = if header("authorization").nil?
                    "POST /v2/specialize needs this container's specialization token: Authorization: Bearer <token>"
                  else
                    "the specialization token is wrong"
                  end
        respond_json(401, Faasd.error_body("unauthorized", message), [%w[WWW-Authenticate Bearer]])
        return
      end
      unless Faasd.state == "generic"
        drain
        respond_error(409, "already_specialized", Faasd.already_message)
        return
      end
      started = Process.clock_gettime(Process::CLOCK_MONOTONIC)
      raw = read_body(MAX_SPECIALIZE_BYTES)
      # UTF-8 JSON, not necessarily ASCII-escaped: faasd sends the source as it is.
      text = raw.dup.force_encoding(Encoding::UTF_8)
      raise BadRequestError, "the body is not valid UTF-8" unless text.valid_encoding?

      text = text.delete_prefix("\uFEFF")
      begin
        doc = JSON.parse(text)
      rescue JSON::ParserError => e
        raise BadRequestError, "the body is not valid JSON: #{e.message.lines.first.to_s.strip}"
      end
      invalid = Faasd.validate_specialize(doc)
      raise BadRequestError, invalid if invalid

      unless Faasd.begin_loading(doc)
        respond_error(409, "already_specialized", Faasd.already_message)
        return
      end
      status, body = Faasd.specialize(doc, started)
      respond_json(status, body)
    end

    # -- calls

    def build_request
      body = read_body
      headers = {}
      context = {}
      params_header = nil
      request_id = nil
      @headers.each do |k, v|
        k = k.downcase.force_encoding(Encoding::UTF_8) # every String the function gets is UTF-8
        # Valid UTF-8 as it is, anything else read as latin-1 (as HTTP/1.1 defines it).
        u = v.b.force_encoding(Encoding::UTF_8)
        v = u.valid_encoding? ? u : v.b.force_encoding(Encoding::ISO_8859_1).encode(Encoding::UTF_8)
        if k.start_with?("x-faasd-")
          # faasd's own headers (its data plane strips callers'): never among the
          # headers; the params go to params, the rest (the trigger, call id,
          # event...) to context, the first value kept.
          if k == "x-faasd-params"
            params_header ||= v
          else
            key = k[8..].tr("-", "_")
            context[key] = v unless context.key?(key)
          end
          next
        end

        request_id ||= v if k == "x-request-id" # also among the headers, as it came
        headers[k] = headers.key?(k) ? "#{headers[k]}, #{v}" : v
      end
      # The call's id (faasd sends one with every call): in the context, and
      # the prefix of every line the function writes (call).
      context["request_id"] = request_id if request_id && REQUEST_ID_RE.match?(request_id)
      params = {}
      if params_header && !params_header.empty?
        begin
          params = JSON.parse(params_header)
        rescue JSON::ParserError => e
          raise BadRequestError, "the X-Faasd-Params header is not valid JSON: #{e.message.lines.first.to_s.strip}"
        end
        raise BadRequestError, "the X-Faasd-Params header must be a JSON object" unless params.is_a?(Hash)
      end
      url = Faasd.utf8(@target.b.force_encoding(Encoding::UTF_8))
      query = Faasd.parse_query(url.partition("?").last)
      Request.new(@method.dup.force_encoding(Encoding::UTF_8), url, query, headers, params, body, context)
    end

    def call
      request = build_request
      Faasd.with_request_log(request.context["request_id"]) { run_call(request) }
    end

    def run_call(request)
      begin
        status, headers, body = Faasd.to_response(Faasd.invoke(request))
      rescue BadRequestError => e
        respond_error(e.status, "bad_request", e.message)
        return
      rescue Exception => e # rubocop:disable Lint/RescueException -- a function's exit, too
        respond_json(500, Faasd.function_failed(e))
        return
      end
      respond(status, headers, body)
    end
  end

  def self.serve
    %w[TERM INT].each { |sig| Signal.trap(sig) { Process.exit!(0) } }
    server = TCPServer.new("0.0.0.0", PORT)
    server.listen(128)
    main = TOPLEVEL_BINDING.receiver
    # `request` in a function that takes no argument (the top-level object's own method).
    main.define_singleton_method(:request) do
      Thread.current[:faasd_request] or raise "`request` is only available while a request is handled"
    end
    main.singleton_class.send(:private, :request)
    prefix_output
    open_note = SPECIALIZE_TOKEN.empty? ? " (no FAASD_SPECIALIZE_TOKEN: specialization needs no token)" : ""
    log("ruby #{RUBY_VERSION} listening on 0.0.0.0:#{PORT}#{open_note}")
    while true # rubocop:disable Style/InfiniteLoop
      begin
        sock = server.accept
      rescue SystemCallError # EMFILE and the like: wait for a connection to end
        sleep 0.05
        next
      end
      Thread.new(sock) { |s| Connection.new(s).serve }
    end
  end
end

Faasd.serve if $PROGRAM_NAME == __FILE__
