// Cross-origin requests from web pages, for the origins `--cors-origin` names (none by default).

import Hummingbird

/// Answers CORS preflights (OPTIONS with Access-Control-Request-Method) and marks the responses
/// to allowed origins. A request from an origin not allowed gets no CORS headers (the browser
/// then keeps the response from the page) and its preflight a 403.
struct CORSOrigins<Context: RequestContext>: RouterMiddleware {
    let origins: [String]

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        guard let origin = request.headers[.origin] else { return try await next(request, context) }
        let allowed = origins.contains("*") || origins.contains(origin)
        let value = origins.contains("*") ? "*" : origin
        if request.method == .options, request.headers[.accessControlRequestMethod] != nil {
            guard allowed else { return Response(status: .forbidden) }
            var headers: HTTPFields = [
                .accessControlAllowOrigin: value,
                .accessControlAllowMethods: "GET, POST, OPTIONS",
                .accessControlAllowHeaders: request.headers[.accessControlRequestHeaders] ?? "Authorization, Content-Type",
                .accessControlMaxAge: "600",
            ]
            if value != "*" { headers[.vary] = "Origin" }
            return Response(status: .noContent, headers: headers)
        }
        var response = try await next(request, context)
        if allowed {
            response.headers[.accessControlAllowOrigin] = value
            if value != "*" { response.headers[values: .vary].append("Origin") }
        }
        return response
    }
}
