// (BW (x) DCB) x A(m) that reads the FFT convolution once per parameter change.
//
// Why not RooEffProd(conv, A): its normalisation is a numeric integral whose integrand asks the
// RooFFTConvPdf for values with another normalisation set than the data do, and RooAbsCachedPdf
// keeps one cache (one FFT) per set, so every parameter change computed the convolution twice.
// This pdf reads the convolution's cache histogram itself: the data values (linear interpolation
// between the cache bins) and the normalisation (sum over the same bins, exact for that
// interpolation up to the two half bins at the edges) come from one table, filled once.
//
// The convolution is a shape server only, so RooFit still clones and redirects it with the model
// but takes the value dependence from the parameters given explicitly (value servers).
// A(m) is tabulated at equally spaced points (first point, spacing, values) and linear between
// them, constant beyond the outer points, like a RooHistFunc of interpolation order 1.

#include "RooAbsCachedPdf.h"
#include "RooAbsPdf.h"
#include "RooArgSet.h"
#include "RooDataHist.h"
#include "RooFit/Detail/RooNormalizedPdf.h"
#include "RooFit/EvalContext.h"
#include "RooRealProxy.h"
#include "RooSetProxy.h"

#include <stdexcept>
#include <string>
#include <vector>

class EbeAcceptedConvPdf : public RooAbsPdf {
public:
   EbeAcceptedConvPdf() = default;
   EbeAcceptedConvPdf(const char *name, const char *title, RooAbsReal &x, RooAbsPdf &conv, const RooArgSet &params,
                      double first, double spacing, std::vector<double> acceptance)
      : RooAbsPdf(name, title),
        _x("x", "observable", this, x),
        _conv("conv", "cached convolution", this, conv, false, true),
        _params("params", "parameters of the convolution", this),
        _obs("obs", "normalisation set of the cache", this, false, false),
        _first(first),
        _spacing(spacing),
        _acceptance(std::move(acceptance))
   {
      if (_acceptance.empty() || !(_spacing > 0)) {
         throw std::invalid_argument(std::string(name) + ": acceptance table needs values and a positive spacing");
      }
      _params.add(params);
      _obs.add(x);
   }

   EbeAcceptedConvPdf(const EbeAcceptedConvPdf &other, const char *name = nullptr)
      : RooAbsPdf(other, name),
        _x("x", this, other._x),
        _conv("conv", this, other._conv),
        _params("params", this, other._params),
        _obs("obs", this, other._obs),
        _first(other._first),
        _spacing(other._spacing),
        _acceptance(other._acceptance)
   {
   }

   TObject *clone(const char *name) const override { return new EbeAcceptedConvPdf(*this, name); }

   Int_t getAnalyticalIntegral(RooArgSet &allVars, RooArgSet &analVars, const char *rangeName = nullptr) const override
   {
      // Only the full range is the cache table's range; sub-ranges go to RooFit's numeric integral.
      if (rangeName && *rangeName) {
         return 0;
      }
      return matchArgs(allVars, analVars, _x) ? 1 : 0;
   }

   double analyticalIntegral(Int_t /*code*/, const char * /*rangeName*/) const override
   {
      const double *w = table();
      double sum = 0.0;
      for (std::size_t i = 0; i < _centres.size(); ++i) {
         sum += w[i] * _acceptanceAtCentres[i];
      }
      return sum * _width;
   }

protected:
   double evaluate() const override
   {
      const double m = _x;
      return interpolated(table(), m) * acceptance(m);
   }

   void doEval(RooFit::EvalContext &ctx) const override
   {
      const double *w = table();
      std::span<double> out = ctx.output();
      std::span<const double> xs = ctx.at(&_x.arg());
      for (std::size_t i = 0; i < out.size(); ++i) {
         const double m = xs[xs.size() > 1 ? i : 0];
         out[i] = interpolated(w, m) * acceptance(m);
      }
   }

private:
   double acceptance(double m) const
   {
      const double u = (m - _first) / _spacing;
      if (u <= 0.0) {
         return _acceptance.front();
      }
      const auto k = static_cast<std::size_t>(u);
      if (k + 1 >= _acceptance.size()) {
         return _acceptance.back();
      }
      const double f = u - k;
      return _acceptance[k] * (1.0 - f) + _acceptance[k + 1] * f;
   }

   double interpolated(const double *w, double m) const
   {
      const double u = (m - _centres.front()) / _width;
      if (u <= 0.0) {
         return w[0];
      }
      const auto k = static_cast<std::size_t>(u);
      if (k + 1 >= _centres.size()) {
         return w[_centres.size() - 1];
      }
      const double f = u - k;
      return w[k] * (1.0 - f) + w[k + 1] * f;
   }

   /// The convolution's cache contents, refilled by RooFit when a parameter changed. In the
   /// batch evaluation the convolution arrives wrapped in a RooNormalizedPdf; its cache is the one
   /// the evaluator fills for the same normalisation set, so asking for it costs no second FFT.
   const double *table() const
   {
      const RooAbsArg *arg = &_conv.arg();
      if (auto wrapped = dynamic_cast<const RooFit::Detail::RooNormalizedPdf *>(arg)) {
         arg = &wrapped->pdf();
      }
      auto cached = dynamic_cast<const RooAbsCachedPdf *>(arg);
      if (!cached) {
         throw std::logic_error(std::string(GetName()) + ": the convolution is not a cached pdf");
      }
      RooDataHist *hist = cached->getCacheHist(&_obs);
      const auto n = static_cast<std::size_t>(hist->numEntries());
      if (_centres.size() != n) {
         _centres.resize(n);
         _acceptanceAtCentres.resize(n);
         for (std::size_t i = 0; i < n; ++i) {
            _centres[i] = hist->get(i)->getRealValue(_x.arg().GetName());
            _acceptanceAtCentres[i] = acceptance(_centres[i]);
         }
         _width = n > 1 ? _centres[1] - _centres[0] : 1.0;
      }
      return hist->weightArray();
   }

   RooRealProxy _x;
   RooRealProxy _conv;
   RooSetProxy _params;
   RooSetProxy _obs;
   double _first = 0.0;
   double _spacing = 1.0;
   std::vector<double> _acceptance;
   mutable std::vector<double> _centres;             //! cache bin centres, read once
   mutable std::vector<double> _acceptanceAtCentres; //! A at those centres
   mutable double _width = 1.0;                      //! cache bin width
};
